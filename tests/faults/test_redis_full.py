"""Redis full (noeviction) and recovered: producers see broker_full, workers live, jobs end."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from broker import keys
from broker.client import Client, JobHandle
from broker.errors import BrokerFull
from broker.schemas import TERMINAL, JobStatus
from tests.support import chat_job, client_for, running_cluster

HEADROOM = 2 * 1024 * 1024
PROMPT = "full " * 300  # ~1.5 KB a payload: a few hundred jobs fill the headroom


def _submit_until_refused(client: Client, handles: list[JobHandle]) -> None:
    for i in range(5000):
        handles.append(client.submit(chat_job("chat-large", "alpha", f"{i} {PROMPT}")))


def test_full_redis_refuses_cleanly_and_every_accepted_job_ends(tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--latency", "200", concurrency=8,
                         visibility_timeout_s=30, model_task_time_limit_s=10) as (cluster, _):
        with client_for(cluster) as client:
            used = int(client.redis.info("memory")["used_memory"])
            client.redis.config_set("maxmemory-policy", "noeviction")
            client.redis.config_set("maxmemory", used + HEADROOM)
            handles: list[JobHandle] = []
            with pytest.raises(BrokerFull) as refused:
                _submit_until_refused(client, handles)
            assert refused.value.code == "broker_full"
            assert handles, "nothing was admitted before the broker was full"
            # Nothing of refused jobs stays behind: every job hash is an accepted job's.
            accepted = {h.id for h in handles}
            stored = {k.removeprefix(keys.job("")) for k in client.redis.scan_iter(keys.job("*"))}
            assert stored <= accepted, stored - accepted
            client.redis.config_set("maxmemory", 0)
            results = client.wait_all(handles, timeout=240)
        alive = {n: p.poll() is None for n, p in cluster.procs.processes.items()}
    assert all(alive.values()), alive
    assert len(results) == len(handles)
    assert all(r.status in TERMINAL for r in results)
    outcomes = Counter((r.status, r.error.code if r.error else None) for r in results)
    assert outcomes == {(JobStatus.SUCCEEDED, None): len(handles)}, outcomes
