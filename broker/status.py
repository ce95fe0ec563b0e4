"""What `aibroker status` shows: queues and deployments, read from Redis in one round trip."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from broker import jobstore as js
from broker import keys
from broker.catalog import Catalog
from broker.liveness import live_consumers
from broker.queues import POLICY_QUEUE, PRIORITY_STEPS, ROUTE_QUEUE, model_queue


@dataclass(slots=True)
class QueueStatus:
    """Depth of one queue (all priority lanes) and the age of its oldest job."""

    name: str
    depth: int
    oldest_age_s: float | None


@dataclass(slots=True)
class DeploymentStatus:
    """One deployment's load against its limits."""

    name: str
    model: str
    queue: QueueStatus
    in_flight: int
    concurrency: int
    factor: float
    rpm_used: int
    rpm: int
    tpm_used: int
    tpm: int
    health: str
    latency_ms: float | None
    consumers: int = 0  # live worker processes on its queue; 0: its jobs wait for one

    @property
    def effective_concurrency(self) -> int:
        """Concurrency after adaptive shrinking."""
        return max(1, int(self.concurrency * self.factor))


def _lane_lists(queue: str) -> list[str]:
    # kombu's Redis transport keeps one list per priority step: "q", "q:3", "q:6", "q:9".
    return [queue if step == 0 else f"{queue}:{step}" for step in PRIORITY_STEPS]


def _first_job_id(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        ids = body[0][-1]
        return str(ids[0]) if ids else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _queue_status(client: redis.Redis, name: str) -> QueueStatus:
    lists = _lane_lists(name)
    with client.pipeline(transaction=False) as pipe:
        for key in lists:
            pipe.llen(key)
        for key in lists:
            pipe.lindex(key, -1)  # kombu pushes left and pops right: the oldest is last
        replies = pipe.execute()
    depth = sum(int(n) for n in replies[:len(lists)])
    oldest: float | None = None
    for raw in replies[len(lists):]:
        job_id = _first_job_id(raw)
        submitted = client.hget(js.job_key(job_id), js.F_SUBMITTED) if job_id else None
        if submitted:
            age = time.time() - float(submitted)
            oldest = age if oldest is None else max(oldest, age)
    return QueueStatus(name, depth, oldest)


def _window_sum(client: redis.Redis, prefix: str, window: int) -> int:
    sec = int(time.time())
    values = client.mget([f"{prefix}{s}" for s in range(sec - window + 1, sec + 1)])
    return sum(int(v) for v in values if v)


def read_status(client: redis.Redis, catalog: Catalog) -> tuple[list[QueueStatus],
                                                                  list[DeploymentStatus]]:
    """Gateway queues and every deployment's current state."""
    window = catalog.broker.capacity.window_s
    queues = [_queue_status(client, name) for name in (POLICY_QUEUE, ROUTE_QUEUE)]
    rows = []
    now_ms = int(time.time() * 1000)
    consumers = live_consumers(client)
    for name, deployment in catalog.deployments.items():
        scope = f"dep:{name}"
        state: dict[str, Any] = client.hgetall(keys.deployment_state(name))  # type: ignore[assignment]
        capacity = deployment.capacity
        prefix = keys.capacity_prefix(scope)
        rows.append(DeploymentStatus(
            name=name, model=catalog.model_of_deployment[name],
            queue=_queue_status(client, model_queue(name)),
            in_flight=int(client.zcount(keys.capacity_leases(scope), now_ms, "+inf")),
            concurrency=capacity.concurrency, factor=float(state.get("factor", 1.0)),
            rpm_used=_window_sum(client, prefix + "r:", window) * 60 // window,
            rpm=capacity.rpm, tpm_used=_window_sum(client, prefix + "t:", window) * 60 // window,
            tpm=capacity.tpm, health=str(state.get("state", "closed")),
            latency_ms=float(state["ewma_ms"]) if "ewma_ms" in state else None,
            consumers=consumers.get(model_queue(name), 0)))
    return queues, rows
