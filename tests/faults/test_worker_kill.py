"""A model worker SIGKILLed mid-call: every job still ends once and is billed once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from broker import keys
from broker.ledger import read_usage
from broker.schemas import JobStatus
from broker.workerplan import model_worker
from tests.support import chat_job, client_for, running_cluster


def _wait_for_in_flight(stats: object, minimum: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = int(stats()["in_flight"])  # type: ignore[operator]
        if current >= minimum:
            return current
        time.sleep(0.05)
    raise AssertionError(f"never reached {minimum} calls in flight")


def test_sigkill_model_worker_with_jobs_in_flight(tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--latency", "1500", concurrency=64,
                         visibility_timeout_s=20, model_task_time_limit_s=10) as (cluster, _):
        jobs = [chat_job("chat-large", "alpha", f"job {i}") for i in range(120)]
        with client_for(cluster) as client:
            handles = client.submit_many(jobs)
            in_flight = _wait_for_in_flight(cluster.upstream_stats, 50)
            cluster.procs.kill("model.large-a")
            cluster.start_worker(model_worker(cluster.catalog, "large-a"), "model.large-a.2")
            results = client.wait_all(handles, timeout=120)
            ledger = read_usage(client.redis, by=("tenant", "model"))
            runs = [int(client.redis.hget(keys.job(h.id), "runs") or 0) for h in handles]

    assert in_flight >= 50
    assert len(results) == len(handles) == len({r.id for r in results})
    assert Counter(r.status for r in results) == {JobStatus.SUCCEEDED: 120}
    assert max(runs) >= 2  # some jobs really were redelivered after the kill
    (row,) = [r for r in ledger if r.group == {"tenant": "alpha", "model": "chat-large"}]
    assert row.requests == 120
    assert row.prompt_tokens == sum(r.usage.prompt_tokens for r in results)
    assert row.completion_tokens == sum(r.usage.completion_tokens for r in results)
