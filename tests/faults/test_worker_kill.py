"""A model worker SIGKILLed mid-call: every job still ends once and is billed once, and
every call the provider served is either billed or counted as lost in flight."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
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


def _eventually(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_sigkill_model_worker_with_jobs_in_flight(tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--latency", "1500", "--bill-abandoned", concurrency=64,
                         visibility_timeout_s=20, model_task_time_limit_s=10) as (cluster, _):
        jobs = [chat_job("chat-large", "alpha", f"job {i}") for i in range(120)]
        with client_for(cluster) as client:
            handles = client.submit_many(jobs)
            # Every call slot busy upstream: no call sits between its record and its send,
            # the one moment a kill makes a lost call of one the provider never saw.
            in_flight = _wait_for_in_flight(cluster.upstream_stats, 64)
            cluster.procs.kill("model.large-a")
            cluster.start_worker(model_worker(cluster.catalog, "large-a"), "model.large-a.2")
            results = client.wait_all(handles, timeout=120)
            ledger = read_usage(client.redis, by=("tenant", "model"))
            by_deployment = read_usage(client.redis, by=("deployment",))
            served = int(cluster.upstream_stats()["usage_total"]["requests"])
            runs = [int(client.redis.hget(keys.job(h.id), "runs") or 0) for h in handles]
            # Every call settled, so the index of open calls empties (no entry is left over).
            index_empty = _eventually(lambda: client.redis.zcard(keys.open_attempts()) == 0)

    assert in_flight >= 50
    assert len(results) == len(handles) == len({r.id for r in results})
    assert Counter(r.status for r in results) == {JobStatus.SUCCEEDED: 120}
    assert max(runs) >= 2, Counter(runs)  # some jobs really were redelivered after the kill
    (row,) = [r for r in ledger if r.group == {"tenant": "alpha", "model": "chat-large"}]
    assert row.requests == 120
    assert row.prompt_tokens == sum(r.usage.prompt_tokens for r in results)
    assert row.completion_tokens == sum(r.usage.completion_tokens for r in results)
    # The killed worker's calls were served upstream but never billed: each is counted
    # once as lost in flight, per deployment, with estimated tokens, and billed nowhere.
    (large,) = [r for r in by_deployment if r.group == {"deployment": "large-a"}]
    assert large.lost_in_flight >= 50
    assert served == row.requests + large.lost_in_flight
    assert sum(r.lost_in_flight for r in by_deployment) == large.lost_in_flight
    assert large.lost_prompt_tokens > 0
    assert large.lost_completion_tokens == 12 * large.lost_in_flight  # max_tokens, estimated
    assert index_empty
