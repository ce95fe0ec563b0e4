"""Shared steps of the broker scenarios: start workers, warm up, measure one batch of jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench.config import DEPLOYMENT, jobs
from bench.harness import BrokerRun, broker
from bench.measure import Measured, require_all, run_jobs, wait_results
from bench.progress import log
from bench.scenarios import Context
from broker.catalog import Catalog
from broker.workerplan import WorkerSpec, gateway_worker, model_worker

SpecsFor = Callable[[Catalog], list[WorkerSpec]]


def model_processes(count: int) -> SpecsFor:
    """The gateway plus `count` model-worker processes sharing the deployment's capacity."""
    def specs(catalog: Catalog) -> list[WorkerSpec]:
        one = model_worker(catalog, DEPLOYMENT, hosts=count)
        return [gateway_worker(catalog)] + [replace(one, name=f"{one.name}.{i}")
                                            for i in range(count)]
    return specs


def warm_up(run: BrokerRun, count: int, stall_s: float) -> None:
    """Run a few jobs first: connections open, the tokenizer loads, the loop settles."""
    handles = run.client.submit_many(jobs(count, start=10_000_000))
    require_all(*wait_results(run.client, [h.id for h in handles], stall_s), "warm-up")


def measure_broker(ctx: Context, name: str, catalog: dict[str, Any], count: int,
                   specs: SpecsFor | None = None, budget_s: float | None = None) -> Measured:
    """A fresh broker with `catalog`: start its workers, warm up, then measure `count` jobs."""
    log(f"{name}: {count:,} jobs")
    with broker(ctx.infra, name, catalog) as run:
        run.start_workers(specs(run.cluster.catalog) if specs else None)
        warm_up(run, ctx.sizes.warmup_jobs, ctx.sizes.stall_s)
        return run_jobs(run, jobs(count), name, ctx.sizes.stall_s,
                        budget_s=budget_s or ctx.sizes.run_budget_s)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the divisor is zero."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def dig(results: dict[str, dict[str, Any]], *path: str) -> Any:
    """A nested value of earlier results, or None when any step is missing."""
    node: Any = results
    for step in path:
        if not isinstance(node, dict) or step not in node:
            return None
        node = node[step]
    return node
