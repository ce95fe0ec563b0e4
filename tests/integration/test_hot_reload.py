"""A deployment added to the catalog of a running broker: its jobs wait for a worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.catalog import hash_key
from broker.cluster import LocalCluster
from broker.localstack import EmbeddedRedis
from broker.schemas import JobStatus
from broker.status import DeploymentStatus, read_status
from broker.workerplan import gateway_worker, model_worker
from tests.support import KEYS, chat_job, client_for, deployment, wait_until


def _catalog(upstream: str, *, with_new: bool) -> dict[str, Any]:
    models: dict[str, Any] = {"chat-x": {"deployments": [deployment("dep-a", upstream, "gpt-x")]}}
    if with_new:
        models["chat-y"] = {"deployments": [deployment("dep-b", upstream, "gpt-y")]}
    return {
        "broker": {"batch_size": 4, "visibility_timeout_s": 40, "model_task_time_limit_s": 20,
                   "catalog_reload_s": 0.2},
        "models": models,
        "tenants": {"alpha": {"key_sha256": hash_key(KEYS["alpha"]),
                              "allowed_models": ["chat-*"]}},
    }


def _row(cluster: LocalCluster, name: str) -> DeploymentStatus:
    with client_for(cluster) as client:
        _, rows = read_status(client.redis, cluster.catalog)
    return next(row for row in rows if row.name == name)


def _queued_row(cluster: LocalCluster, name: str) -> DeploymentStatus | None:
    row = _row(cluster, name)
    return row if row.queue.depth == 1 else None


def _cli_consumers(cluster: LocalCluster) -> dict[str, int]:
    shown = subprocess.run([sys.executable, "-m", "broker.cli.main", "status", "--format",
                            "json"], env={**os.environ, **cluster.env}, capture_output=True,
                           text=True, timeout=60, check=True)
    return {row["name"]: row["consumers"] for row in json.loads(shown.stdout)["deployments"]}


def _one_job(cluster: LocalCluster) -> None:
    with client_for(cluster) as client:
        done = client.submit(chat_job("chat-x", "alpha")).result(timeout=30)
    assert done.status is JobStatus.SUCCEEDED, done.error


@pytest.mark.parametrize("busy", [True, False], ids=["reload", "first-job-after-change"])
def test_new_deployment_jobs_wait_for_a_worker_then_run(tmp_path: Path, busy: bool) -> None:
    with EmbeddedRedis() as server, LocalCluster(tmp_path, server.url) as cluster:
        upstream = cluster.start_upstream("upstream", "--latency", "10")
        first = cluster.write_catalog(_catalog(upstream, with_new=False))
        gateway = cluster.start_worker(gateway_worker(first))
        cluster.start_worker(model_worker(first, "dep-a"))
        wait_until(lambda: _row(cluster, "dep-a").consumers == 1, 30, "dep-a has a worker")
        if busy:
            _one_job(cluster)  # the gateway has read the first catalog

        reloaded = cluster.write_catalog(_catalog(upstream, with_new=True))
        if busy:
            def reloaded_yet() -> bool:
                # The gateway looks for catalog changes when it admits jobs.
                _one_job(cluster)
                return "catalog reloaded" in cluster.procs.log(gateway)

            wait_until(reloaded_yet, 60, "the gateway reloads the catalog", interval=0.2)
        # Otherwise the gateway reads the new file with its first job, after its app was
        # built from the old one.
        with client_for(cluster) as client:
            handle = client.submit(chat_job("chat-y", "alpha"))
            waiting = wait_until(lambda: _queued_row(cluster, "dep-b"), 30,
                                 "the job waits on dep-b's queue")
            assert waiting is not None and waiting.consumers == 0
            assert _row(cluster, "dep-a").consumers == 1
            assert _cli_consumers(cluster) == {"dep-a": 1, "dep-b": 0}
            assert client.peek(handle.id) is None and not handle.status().terminal

            cluster.start_worker(model_worker(reloaded, "dep-b"))
            result = handle.result(timeout=60)
            assert result.status is JobStatus.SUCCEEDED, result.error
            assert result.route.deployment == "dep-b"
            wait_until(lambda: _row(cluster, "dep-b").consumers == 1, 30, "dep-b has a worker")
        assert "QueueNotFound" not in cluster.procs.log(gateway)
