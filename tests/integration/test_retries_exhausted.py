"""A job whose retries are exhausted keeps where it ran, how long it took and why it failed."""

from __future__ import annotations

from pathlib import Path

from broker.catalog import hash_key
from broker.cluster import LocalCluster
from broker.ledger import read_usage
from broker.localstack import EmbeddedRedis
from broker.schemas import JobStatus
from tests.support import KEYS, chat_job, client_for, deployment


def test_exhausted_retries_keep_deployment_timings_and_last_status(tmp_path: Path) -> None:
    with EmbeddedRedis() as server, LocalCluster(tmp_path, server.url) as cluster:
        upstream = cluster.start_upstream("upstream", "--latency", "20", "--rate-503", "1")
        cluster.write_catalog({
            "broker": {"batch_size": 4, "visibility_timeout_s": 40, "model_task_time_limit_s": 20,
                       "retry": {"max_attempts": 3, "backoff_base_s": 0.05,
                                 "backoff_max_s": 0.1}},
            "models": {"chat-x": {"deployments": [deployment("dep-a", upstream, "gpt-x")]}},
            "tenants": {"alpha": {"key_sha256": hash_key(KEYS["alpha"]),
                                  "allowed_models": ["chat-*"]}},
        })
        cluster.start_workers()
        with client_for(cluster) as client:
            result = client.submit(chat_job("chat-x", "alpha")).result(timeout=60)
            ledger = read_usage(client.redis, by=("deployment",))

    assert result.status is JobStatus.FAILED
    assert result.error is not None
    assert result.error.code == "upstream_unavailable"
    assert result.error.message == "chat-x failed on dep-a after 3 attempts, last HTTP 503"
    assert result.route.deployment == "dep-a"
    attempts = result.route.attempts
    assert [(a.deployment, a.http_status) for a in attempts] == [("dep-a", 503)] * 3
    timings = result.timings
    assert timings.upstream == sum(a.duration_ms for a in attempts) > 0
    assert timings.queued > 0 and timings.policy > 0
    assert timings.total >= timings.queued + timings.upstream
    assert {row.group["deployment"]: row.requests for row in ledger} == {"dep-a": 1}
