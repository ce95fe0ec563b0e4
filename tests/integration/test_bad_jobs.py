"""A job the schemas cannot carry is refused at submit; one a stage cannot process ends alone."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from broker.client import JobHandle
from broker.cluster import LocalCluster
from broker.errors import ValidationError
from broker.schemas import JobRequest, JobStatus
from tests.support import KEYS, chat_job, client_for


def _parts_job(text: Any) -> dict[str, Any]:
    job = chat_job("chat-small", "alpha")
    job["messages"] = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    return job


@pytest.mark.parametrize("job", [
    _parts_job(5), _parts_job(None), _parts_job(["a", "b"]),
    chat_job("chat-small", "alpha", "bad \ud800 text"),
    {**chat_job("chat-small", "alpha"), "metadata": {"note": "x\udfff"}},
    {**chat_job("chat-small", "alpha"), "metadata": {"k\ud800": "v"}},
], ids=["text-int", "text-none", "text-list", "prompt-surrogate", "metadata-surrogate",
        "metadata-key-surrogate"])
def test_what_the_schemas_cannot_carry_is_refused_at_submit(cluster: LocalCluster,
                                                            job: dict[str, Any]) -> None:
    with client_for(cluster) as client:
        before = client.redis.dbsize()
        with pytest.raises(ValidationError):
            client.submit(job)
        assert client.redis.dbsize() == before


def test_submit_many_with_one_bad_job_queues_nothing(cluster: LocalCluster) -> None:
    jobs: list[dict[str, Any] | JobRequest] = [
        chat_job("chat-small", "alpha", f"job {i}") for i in range(40)]
    # Built without validation, as a caller's own code may: found before anything is sent.
    bad = JobRequest.model_validate(chat_job("chat-small", "alpha")).model_copy(
        update={"metadata": {"note": "\ud800"}})
    jobs.insert(37, bad)
    with client_for(cluster) as client:
        before = client.redis.dbsize()
        policy_before = client.redis.llen("policy")
        with pytest.raises(ValidationError, match="job 37"):
            client.submit_many(jobs)
        assert client.redis.dbsize() == before
        assert client.redis.llen("policy") == policy_before
        with pytest.raises(ValidationError, match="job 40"):
            client.submit_many([*jobs[:37], *jobs[38:], _parts_job(7)])
        assert client.redis.dbsize() == before


def test_a_job_past_validation_ends_alone_and_its_message_goes_on(
        cluster: LocalCluster) -> None:
    from broker import jobstore as js

    requests = [JobRequest.model_validate(chat_job("chat-small", "alpha", f"job {i}"))
                for i in range(16)]
    ids = [js.new_job_id() for _ in requests]
    with client_for(cluster) as client:
        client._store(list(zip(ids, requests, strict=True)),
                      [client._key_hash(r, {}) for r in requests], time.time())
        # Written straight into Redis, as only a bug or a hand could: a content part
        # whose `text` is an int, which the stages cannot count.
        client.redis.hset(js.job_key(ids[7]), js.F_BODY, json.dumps({
            "model": "chat-small", "max_tokens": 12,
            "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}))
        client.send_ids(ids, "interactive")
        results = [JobHandle(job_id, client).result(timeout=90) for job_id in ids]
    assert results[7].status is JobStatus.FAILED
    assert results[7].error is not None and results[7].error.code == "invalid_job"
    assert [r.status for r in results[:7] + results[8:]] == [JobStatus.SUCCEEDED] * 15


def test_a_huge_prompt_is_refused_by_size_and_does_not_hold_up_others(
        cluster: LocalCluster) -> None:
    with client_for(cluster) as client:
        huge = client.submit(chat_job("chat-small", "alpha", "a" * 10_000_000))
        normal = client.submit_many([chat_job("chat-small", "alpha", f"job {i}")
                                     for i in range(20)])
        refused = huge.result(timeout=90)
        results = [handle.result(timeout=90) for handle in normal]
    assert refused.status is JobStatus.REJECTED
    assert refused.error is not None and refused.error.code == "input_too_large"
    assert "bytes" in refused.error.message  # refused by size, before any counting
    assert all(r.status is JobStatus.SUCCEEDED for r in results)


def test_a_batch_with_one_line_the_schemas_refuse_still_completes(
        cluster: LocalCluster) -> None:
    lines: list[dict[str, Any]] = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "chat-small", "max_tokens": 12,
                  "messages": [{"role": "user", "content": f"line {i}"}]}}
        for i in range(40)]
    lines[17]["body"]["messages"][0]["content"] = [{"type": "text", "text": 5}]
    with client_for(cluster) as client:
        created = client.batches.create(lines, api_key=KEYS["alpha"], skip_invalid=True)
        batch = client.batches.wait(created.id, timeout=120)
        results = list(client.batches.results(batch.id))
    assert batch.status == "completed"
    assert sorted(r.data["custom_id"] for r in results if r.ok) == sorted(
        f"r{i}" for i in range(40) if i != 17)
    assert [r.data["line"] for r in results if not r.ok] == [18]


def test_a_job_the_model_stage_cannot_build_ends_alone_and_its_message_goes_on(
        cluster: LocalCluster) -> None:
    from broker import jobstore as js
    from broker.queues import LANE_PRIORITY, MODEL_TASK, model_queue

    requests = [JobRequest.model_validate(chat_job("chat-small", "alpha", f"job {i}"))
                for i in range(16)]
    ids = [js.new_job_id() for _ in requests]
    with client_for(cluster) as client:
        client._store(list(zip(ids, requests, strict=True)),
                      [client._key_hash(r, {}) for r in requests], time.time())
        # Admitted and routed, as the policy stage leaves a job, so the message goes
        # straight to the model stage.
        for job_id in ids:
            client.redis.hset(js.job_key(job_id), mapping={
                js.F_STATE: JobStatus.ADMITTED.value, js.F_TENANT: "alpha",
                js.F_INPUT_TOKENS: 5, js.F_DEPLOYMENT: "small-a",
                js.F_ROUTE: js.RouteState(model="chat-small").model_dump_json()})
        # Written straight into Redis, as only a bug or a hand could: a payload the
        # adapter cannot build a request from (a content part whose `text` is an int).
        client.redis.hset(js.job_key(ids[9]), js.F_BODY, json.dumps({
            "model": "chat-small", "max_tokens": 12,
            "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}))
        client._app.send_task(MODEL_TASK, args=["small-a", ids], queue=model_queue("small-a"),
                              priority=LANE_PRIORITY["interactive"])
        results = [JobHandle(job_id, client).result(timeout=90) for job_id in ids]
    assert results[9].status is JobStatus.FAILED
    assert results[9].error is not None and results[9].error.code == "invalid_job"
    assert "model stage" in results[9].error.message
    assert [r.status for r in results[:9] + results[10:]] == [JobStatus.SUCCEEDED] * 15
    assert all(r.route.deployment == "small-a" for r in results)
