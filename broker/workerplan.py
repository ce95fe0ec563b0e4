"""The worker processes a catalog implies: the catalog is the one source of capacity."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from broker.catalog import Catalog
from broker.queues import POLICY_QUEUE, ROUTE_QUEUE, model_queue


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One Celery worker process: what it consumes and how wide its pool is."""

    name: str
    queues: tuple[str, ...]
    concurrency: int
    pool: str = "threads"

    def celery_args(self, loglevel: str = "INFO") -> list[str]:
        """Arguments after `celery -A broker.app`."""
        return ["worker", "-Q", ",".join(self.queues), "-P", self.pool,
                "-c", str(self.concurrency), "-n", f"{self.name}@%h", "-l", loglevel,
                "--without-heartbeat", "--without-mingle", "--without-gossip", "-E"]

    def command(self, python: str = sys.executable, loglevel: str = "INFO") -> list[str]:
        """The full command line that starts this worker."""
        return [python, "-m", "celery", "-A", "broker.app", *self.celery_args(loglevel)]


def gateway_worker(catalog: Catalog) -> WorkerSpec:
    """The policy + routing worker."""
    return WorkerSpec("gateway", (POLICY_QUEUE, ROUTE_QUEUE), catalog.broker.gateway_concurrency)


def model_worker(catalog: Catalog, deployment: str, hosts: int = 1) -> WorkerSpec:
    """The pool serving one deployment, its width the capacity (split over `hosts`)."""
    capacity = catalog.deployments[deployment].capacity.concurrency
    return WorkerSpec(f"model.{deployment}", (model_queue(deployment),),
                      max(1, math.ceil(capacity / hosts)))


def plan(catalog: Catalog, hosts: int = 1) -> list[WorkerSpec]:
    """Every worker the catalog implies, per host."""
    return [gateway_worker(catalog)] + [model_worker(catalog, name, hosts)
                                         for name in catalog.deployments]
