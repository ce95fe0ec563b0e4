"""Lost workers, with the default one-hour visibility timeout: their jobs come back in seconds.

Every worker process beats in Redis and files the messages it holds under its id; a live
worker restores a dead one's messages once its beat is HEARTBEAT_TTL_S old (broker/liveness).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis

from broker import keys
from broker.cluster import LocalCluster
from broker.ledger import UsageRow, read_usage
from broker.liveness import HEARTBEAT_EVERY_S, HEARTBEAT_TTL_S
from broker.schemas import JobStatus
from broker.workerplan import gateway_worker, model_worker
from tests.support import chat_job, client_for, running_cluster

DEFAULT_VISIBILITY_S = 3600
# A worker is dead once its last beat (at most one beat interval before the kill) is a ttl
# old; a live worker's restore timer (2 s) then puts its messages back; the rest is the
# jobs' own run time and a replacement worker's start on a loaded machine.
RECOVERY_BOUND_S = HEARTBEAT_TTL_S + HEARTBEAT_EVERY_S + 2 + 40


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _in_flight(cluster: LocalCluster) -> int:
    return int(cluster.upstream_stats()["in_flight"])


def _served(cluster: LocalCluster) -> int:
    return int(cluster.upstream_stats()["usage_total"]["requests"])


def _deployment_row(client: redis.Redis, deployment: str) -> UsageRow:
    rows = [r for r in read_usage(client, by=("deployment",))
            if r.group == {"deployment": deployment}]
    return rows[0] if rows else UsageRow(group={"deployment": deployment})


def _worker_id(client: redis.Redis, pid: int) -> str:
    """The liveness id of a worker process (host:pid:nonce)."""
    for member in client.zrange(keys.workers_alive(), 0, -1):
        name = member.decode() if isinstance(member, bytes) else str(member)
        if name.split(":")[-2] == str(pid):
            return name
    raise AssertionError(f"no worker beats for pid {pid}")


def test_sigkill_model_worker_jobs_return_well_before_the_visibility_timeout(
        tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--latency", "1500", "--bill-abandoned", concurrency=64,
                         visibility_timeout_s=DEFAULT_VISIBILITY_S) as (cluster, _):
        jobs = [chat_job("chat-large", "alpha", f"job {i}") for i in range(120)]
        with client_for(cluster) as client:
            handles = client.submit_many(jobs)
            _wait_for(lambda: _in_flight(cluster) >= 64, "every call slot busy upstream")
            cluster.procs.kill("model.large-a")
            killed_at = time.monotonic()
            cluster.start_worker(model_worker(cluster.catalog, "large-a"), "model.large-a.2")
            results = client.wait_all(handles, timeout=RECOVERY_BOUND_S)
            recovered_s = time.monotonic() - killed_at
            ledger = _deployment_row(client.redis, "large-a")
            served = _served(cluster)
            restored = [line for name in ("gateway", "model.small-a", "model.small-b",
                                          "model.large-a.2")
                        for line in cluster.procs.log(name).splitlines()
                        if "stopped beating" in line]
    print(f"recovery after SIGKILL of a model worker: {recovered_s:.1f} s "
          f"(visibility timeout {DEFAULT_VISIBILITY_S} s)")
    assert Counter(r.status for r in results) == {JobStatus.SUCCEEDED: 120}
    assert recovered_s < RECOVERY_BOUND_S
    assert restored, "no live worker restored the dead worker's messages"
    assert re.search(r"[1-9]\d* messages .* [1-9]\d* capacity leases freed", restored[0])
    assert ledger.requests == 120
    assert ledger.lost_in_flight >= 64
    assert served == ledger.requests + ledger.lost_in_flight


def _stopped_holding(cluster: LocalCluster, client: redis.Redis, name: str) -> str:
    """Freeze a worker (SIGSTOP) at a moment it holds messages; its liveness id."""
    process = cluster.procs.processes[name]
    member = _worker_id(client, process.pid)
    while True:
        _wait_for(lambda: client.scard(keys.worker_held(member)) > 0, f"{name} holding a message")
        os.killpg(process.pid, signal.SIGSTOP)
        if client.scard(keys.worker_held(member)) > 0:
            return member
        os.killpg(process.pid, signal.SIGCONT)


def test_sigkill_gateway_worker_its_jobs_all_end(tmp_path: Path) -> None:
    with running_cluster(tmp_path, visibility_timeout_s=DEFAULT_VISIBILITY_S) as (cluster, _):
        jobs = [chat_job("chat-small", "beta", f"job {i}") for i in range(3000)]
        with client_for(cluster) as client:
            _wait_for(lambda: client.redis.zcard(keys.workers_alive()) >= 4, "workers beating")
            handles = client.submit_many(jobs)
            member = _stopped_holding(cluster, client.redis, "gateway")
            held = client.redis.scard(keys.worker_held(member))
            cluster.procs.kill("gateway")
            killed_at = time.monotonic()
            cluster.start_worker(gateway_worker(cluster.catalog), "gateway.2")
            results = client.wait_all(handles, timeout=RECOVERY_BOUND_S)
            recovered_s = time.monotonic() - killed_at
            forgotten = not client.redis.exists(keys.worker_held(member))
    print(f"recovery after SIGKILL of the gateway ({held} messages held): {recovered_s:.1f} s")
    assert held > 0
    assert len({r.id for r in results}) == 3000
    assert Counter(r.status for r in results) == {JobStatus.SUCCEEDED: 3000}
    assert forgotten  # the dead worker's held set went with it


def test_sigterm_model_worker_drains_and_loses_nothing(tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--latency", "1500", "--bill-abandoned", concurrency=64,
                         visibility_timeout_s=DEFAULT_VISIBILITY_S) as (cluster, _):
        jobs = [chat_job("chat-large", "alpha", f"job {i}") for i in range(120)]
        with client_for(cluster) as client:
            handles = client.submit_many(jobs)
            _wait_for(lambda: _in_flight(cluster) >= 64, "every call slot busy upstream")
            cluster.procs.kill("model.large-a", signal.SIGTERM)  # waits for it to exit
            cluster.start_worker(model_worker(cluster.catalog, "large-a"), "model.large-a.2")
            results = client.wait_all(handles, timeout=RECOVERY_BOUND_S)
            ledger = _deployment_row(client.redis, "large-a")
            served = _served(cluster)
    assert Counter(r.status for r in results) == {JobStatus.SUCCEEDED: 120}
    assert ledger.requests == served == 120
    assert ledger.lost_in_flight == 0


def test_redelivery_cap_on_a_job_whose_worker_dies_at_each_delivery(tmp_path: Path) -> None:
    cap = 1
    with running_cluster(tmp_path, "--latency", "5000", "--bill-abandoned",
                         visibility_timeout_s=DEFAULT_VISIBILITY_S,
                         max_redeliveries=cap) as (cluster, _), client_for(cluster) as client:
        handle = client.submit(chat_job("chat-large", "alpha", "doomed"))
        name = "model.large-a"
        for delivery in range(1, cap + 2):
            _wait_for(lambda: _in_flight(cluster) >= 1, f"delivery {delivery} calling",
                      timeout=RECOVERY_BOUND_S)
            cluster.procs.kill(name)
            name = f"model.large-a.{delivery + 1}"
            cluster.start_worker(model_worker(cluster.catalog, "large-a"), name)
        result = client.wait(handle.id, timeout=RECOVERY_BOUND_S)
        ledger = _deployment_row(client.redis, "large-a")
        served = _served(cluster)
    assert result.status is JobStatus.FAILED
    assert result.error is not None and result.error.code == "internal_error"
    assert ledger.requests == 0  # a job that never got a reply is billed nothing
    # One call per delivery killed (cap + 1), each counted lost once; then no more: no loop.
    assert ledger.lost_in_flight == served == cap + 1
