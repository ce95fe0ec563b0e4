"""Scenario 4: throughput vs model-worker processes (1, 2, 4) and vs capacity (16, 64, 256)."""

from __future__ import annotations

from typing import Any

from bench import config
from bench.measure import Measured
from bench.progress import log
from bench.scenarios import Context
from bench.scenarios.common import measure_broker, model_processes

PROCESSES = (1, 2, 4)
CAPACITIES = (16, 64, 256)


def _point(measured: Measured, capacity: int, processes: int) -> dict[str, Any]:
    limit = capacity / (config.LATENCY_MS / 1000)
    return {"processes": processes, "capacity": capacity, "jobs_per_s": measured.jobs_per_s,
            "limit_jobs_per_s": limit, "share_of_limit": round(measured.jobs_per_s / limit, 3),
            "broker_cpu_ms_per_job": measured.broker_cpu_ms_per_job,
            "cpu_ms_per_job": measured.cpu_ms_per_job, "lost": measured.lost,
            "peak_in_flight": measured.upstream.get("peak_in_flight"),
            "statuses": measured.statuses, "failures": measured.failures,
            "worker_errors": measured.worker_errors}


def run(ctx: Context) -> dict[str, Any]:
    """Each point is a fresh broker measured on the same number of jobs."""
    count, upstream = ctx.sizes.scaling_jobs, ctx.infra.upstream
    by_processes: list[dict[str, Any]] = []
    for processes in PROCESSES:
        measured = measure_broker(ctx, f"scaling-p{processes}", config.catalog(upstream),
                                  count, model_processes(processes),
                                  budget_s=ctx.sizes.point_budget_s)
        by_processes.append(_point(measured, config.CAPACITY, processes))
    by_capacity: list[dict[str, Any]] = []
    for capacity in CAPACITIES:
        if capacity == config.CAPACITY:
            by_capacity.append(by_processes[0])
            continue
        measured = measure_broker(ctx, f"scaling-c{capacity}",
                                  config.catalog(upstream, concurrency=capacity), count,
                                  budget_s=ctx.sizes.point_budget_s)
        by_capacity.append(_point(measured, capacity, 1))
    log("scaling: " + "; ".join(f"{p['processes']} proc {p['jobs_per_s']:,.0f}/s"
                                for p in by_processes) + " | " +
        "; ".join(f"cap {p['capacity']} {p['jobs_per_s']:,.0f}/s" for p in by_capacity))
    return {"jobs": count, "by_processes": by_processes, "by_capacity": by_capacity}
