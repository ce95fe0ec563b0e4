"""Shared test helpers: catalogs, clusters and workloads on real Redis and real workers."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import redis

from broker import jobstore as js
from broker.backend import read_results
from broker.catalog import hash_key
from broker.client import Client
from broker.cluster import LocalCluster
from broker.localstack import EmbeddedRedis
from broker.schemas import JobResult

T = TypeVar("T")

KEYS = {"alpha": "sk-test-alpha-0123456789", "beta": "sk-test-beta-0123456789"}


def wait_until(predicate: Callable[[], T], timeout: float, what: str,
               interval: float = 0.05) -> T:
    """Poll until the predicate returns something truthy, and return it; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}"
                                 f" (last: {value!r})")
        time.sleep(interval)


def deployment(name: str, upstream: str, model: str, concurrency: int = 16,
               price_in: float = 1.0, price_out: float = 2.0, **extra: Any) -> dict[str, Any]:
    """A catalog deployment pointing at the simulated provider."""
    return {"name": name, "provider": "openai", "base_url": f"{upstream}/v1", "model": model,
            "capacity": {"concurrency": concurrency}, "timeout_s": 10,
            "price": {"input_per_1m": price_in, "output_per_1m": price_out}, **extra}



def make_catalog(upstream: str, concurrency: int = 16, **broker: Any) -> dict[str, Any]:
    """Two models over three deployments, two tenants."""
    return {
        "broker": {"batch_size": 16, "visibility_timeout_s": 40, "model_task_time_limit_s": 20,
                   "retry": {"max_attempts": 5, "backoff_base_s": 0.05, "backoff_max_s": 0.5},
                   **broker},
        "models": {
            "chat-small": {"deployments": [
                deployment("small-a", upstream, "gpt-4o-mini", weight=2),
                deployment("small-b", upstream, "gpt-4o-mini", price_in=0.5, price_out=1.5),
            ]},
            "chat-large": {"deployments": [
                deployment("large-a", upstream, "gpt-4.1", concurrency, price_in=2.0,
                           price_out=8.0)]},
        },
        "tenants": {
            "alpha": {"key_sha256": hash_key(KEYS["alpha"]), "allowed_models": ["chat-*"],
                      "max_input_tokens": 500},
            "beta": {"key_sha256": hash_key(KEYS["beta"]), "allowed_models": ["chat-small"],
                     "max_input_tokens": 500},
        },
    }


def chat_job(model: str, tenant: str, text: str = "hello there", **extra: Any) -> dict[str, Any]:
    """One chat job for a test tenant."""
    return {"model": model, "api_key": KEYS.get(tenant, tenant), "max_tokens": 12,
            "messages": [{"role": "user", "content": text}], **extra}


@contextmanager
def running_cluster(tmp: Path, *upstream_args: str, concurrency: int = 16,
                    **broker: Any) -> Iterator[tuple[LocalCluster, EmbeddedRedis]]:
    """Redis, the simulated provider and every worker of the test catalog."""
    with EmbeddedRedis() as server, LocalCluster(tmp, server.url) as cluster:
        upstream = cluster.start_upstream("upstream", "--seed", "3", *upstream_args)
        cluster.write_catalog(make_catalog(upstream, concurrency, **broker))
        cluster.start_workers()
        yield cluster, server


@contextmanager
def client_for(cluster: LocalCluster) -> Iterator[Client]:
    """A producer client on the cluster's catalog."""
    with Client(cluster.catalog) as client:
        yield client


def kill9_redis(server: EmbeddedRedis) -> None:
    """`kill -9` the suite's redis-server, then start it again on its port and AOF directory."""
    server.kill()
    server.start(timeout=60)  # start() waits until the AOF is loaded and PING answers


def job_fates(client: Client, job_ids: list[str]) -> tuple[dict[str, JobResult], Counter[str]]:
    """The results of the ended jobs, and how many are 'ended', 'pending' or 'lost'.

    A job is lost when Redis has neither its result nor its record (a crash lost the
    write); it never ends, and a caller may count it apart. Raises redis errors as they come.
    """
    ended: dict[str, JobResult] = {}
    fates: Counter[str] = Counter()
    for start in range(0, len(job_ids), 1000):
        chunk = job_ids[start:start + 1000]
        results = read_results(client.redis, chunk)
        with client.redis.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.exists(js.job_key(job_id))
            exists = pipe.execute()
        for job_id, result, found in zip(chunk, results, exists, strict=True):
            if result is not None:
                ended[job_id] = result
            fates["ended" if result is not None else "pending" if found else "lost"] += 1
    return ended, fates


def poll_fates(client: Client, job_ids: list[str]) -> tuple[dict[str, JobResult], Counter[str]]:
    """job_fates, riding out a Redis that is restarting (an empty answer meanwhile)."""
    try:
        return job_fates(client, job_ids)
    except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
        return {}, Counter()
