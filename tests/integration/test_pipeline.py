"""The whole pipeline on real Redis, real workers and the simulated provider."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from broker.cluster import LocalCluster
from broker.ledger import read_usage
from broker.schemas import JobStatus
from tests.support import chat_job, client_for


def _usage_before(cluster: LocalCluster) -> dict[tuple[str, str], tuple[int, int, int]]:
    with client_for(cluster) as client:
        return {(r.group["tenant"], r.group["model"]): (r.requests, r.prompt_tokens,
                                                        r.completion_tokens)
                for r in read_usage(client.redis, by=("tenant", "model"))}


def test_500_jobs_all_succeed_and_ledger_equals_per_job_sums(cluster: LocalCluster) -> None:
    rng = random.Random(11)
    before = _usage_before(cluster)
    served_before = cluster.upstream_stats()["usage_total"]["total_tokens"]
    def words() -> str:
        return " ".join(rng.choice(["red", "green", "blue"]) for _ in range(rng.randint(1, 40)))

    jobs = [chat_job(rng.choice(["chat-small", "chat-large"]), "alpha", words())
            for _ in range(300)]
    jobs += [chat_job("chat-small", "beta", f"question {i}") for i in range(200)]
    with client_for(cluster) as client:
        results = client.wait_all(client.submit_many(jobs), timeout=180)
        ledger = read_usage(client.redis, by=("tenant", "model"))
        by_deployment = read_usage(client.redis, by=("deployment",))

    assert Counter(r.status for r in results) == {JobStatus.SUCCEEDED: 500}
    assert {r.route.deployment for r in results} == {"small-a", "small-b", "large-a"}
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for result in results:
        sums = expected[(result.tenant or "", result.model)]
        sums[0] += 1
        sums[1] += result.usage.prompt_tokens
        sums[2] += result.usage.completion_tokens
        assert not result.usage.estimated
        usage = result.usage
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    for row in ledger:
        key = (row.group["tenant"], row.group["model"])
        old = before.get(key, (0, 0, 0))
        got = [row.requests - old[0], row.prompt_tokens - old[1], row.completion_tokens - old[2]]
        assert got == expected.get(key, [0, 0, 0]), key
    assert {("alpha", "chat-small"), ("alpha", "chat-large"), ("beta", "chat-small")} <= {
        (r.group["tenant"], r.group["model"]) for r in ledger}
    served = cluster.upstream_stats()["usage_total"]["total_tokens"] - served_before
    assert served == sum(r.usage.total_tokens for r in results)
    assert sum(r.requests for r in by_deployment) >= 500


def test_result_records_cost_route_and_timings(cluster: LocalCluster) -> None:
    with client_for(cluster) as client:
        result = client.submit(chat_job("chat-large", "alpha", "price me")).result(timeout=60)
    assert result.status is JobStatus.SUCCEEDED
    assert result.route.deployment == "large-a"
    assert result.route.attempts and result.route.attempts[-1].status == "ok"
    expected_cost = (result.usage.prompt_tokens * 2.0 + result.usage.completion_tokens * 8.0) / 1e6
    assert abs(result.cost_usd - expected_cost) < 1e-12
    assert result.timings.total >= result.timings.upstream > 0
    assert result.response is not None
    assert result.response["choices"][0]["message"]["role"] == "assistant"


def test_handle_status_await_and_cancel(cluster: LocalCluster) -> None:
    import asyncio

    with client_for(cluster) as client:
        handle = client.submit(chat_job("chat-small", "alpha"))
        awaited = asyncio.run(handle.wait(timeout=60))
        assert awaited.status is JobStatus.SUCCEEDED
        assert handle.status() is JobStatus.SUCCEEDED
        assert handle.cancel() is False  # already ended


def test_embeddings_job(cluster: LocalCluster) -> None:
    with client_for(cluster) as client:
        result = client.submit({"model": "chat-small", "api_key": "sk-test-alpha-0123456789",
                                "input": ["one two three", "four"]}).result(timeout=60)
    assert result.status is JobStatus.SUCCEEDED
    assert result.kind == "embeddings"
    assert result.response is not None and len(result.response["data"]) == 2
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens == 0
