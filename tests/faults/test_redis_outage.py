"""Redis stopped and started again mid-run: workers ride it out, every job ends once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from broker.ledger import read_usage
from broker.schemas import JobStatus
from tests.support import chat_job, client_for, running_cluster

JOBS = 200
OUTAGE_S = 3.0


def test_jobs_survive_a_redis_restart_with_calls_in_flight(tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--latency", "300", concurrency=16,
                         visibility_timeout_s=20, model_task_time_limit_s=10) as (cluster, server):
        with client_for(cluster) as client:
            handles = client.submit_many(
                [chat_job("chat-large", "alpha", f"outage {i}") for i in range(JOBS)])
            deadline = time.monotonic() + 30
            while cluster.upstream_stats()["in_flight"] < 8:
                assert time.monotonic() < deadline, "calls never got under way"
                time.sleep(0.05)
            server.shutdown()  # calls in flight finish while Redis is away
            time.sleep(OUTAGE_S)
            server.start()
            results = client.wait_all(handles, timeout=180)
            ledger = read_usage(client.redis, by=("tenant", "model"))
        alive = {name: proc.poll() is None for name, proc in cluster.procs.processes.items()}

    assert all(alive.values()), alive  # no worker died of the outage
    assert len(results) == JOBS == len({r.id for r in results})
    assert Counter(r.status for r in results) == {JobStatus.SUCCEEDED: JOBS}
    # Billed exactly once per job, even where a call was made again after the outage.
    (row,) = [r for r in ledger if r.group == {"tenant": "alpha", "model": "chat-large"}]
    assert row.requests == JOBS
    assert row.prompt_tokens == sum(r.usage.prompt_tokens for r in results)
    assert row.completion_tokens == sum(r.usage.completion_tokens for r in results)
