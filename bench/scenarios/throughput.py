"""Scenario 1: throughput and cost of the broker at capacity 256, 50 ms upstream."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from bench import config, redisstats
from bench.harness import broker
from bench.measure import require_all, run_jobs, wait_results
from bench.profiling import Profiles
from bench.progress import log
from bench.scenarios import Context


def run(ctx: Context) -> dict[str, Any]:
    """Redis memory per queued job (workers stopped), then N jobs through the whole broker."""
    sizes, infra = ctx.sizes, ctx.infra
    log(f"throughput: {sizes.throughput_jobs:,} chat jobs, capacity {config.CAPACITY}, "
        f"{config.LATENCY_MS:g} ms upstream")
    with broker(infra, "throughput", config.catalog(infra.upstream)) as run_:
        probe = sizes.queued_probe_jobs
        before = redisstats.used_memory(infra.redis)
        handles = run_.client.submit_many(config.jobs(probe, start=20_000_000))
        queued_bytes = (redisstats.used_memory(infra.redis) - before) / probe
        log(f"  redis memory per queued job: {queued_bytes:,.0f} bytes ({probe:,} queued)")
        run_.start_workers()
        require_all(*wait_results(run_.client, [h.id for h in handles], sizes.stall_s),
                    "queued probe")
        targets = {"producer": os.getpid(),
                   **{name: p.pid for name, p in run_.cluster.procs.processes.items()}}
        profiles = Profiles(infra.work_dir / "profiles", targets) if ctx.profile else None
        with profiles or contextlib.nullcontext():
            measured = run_jobs(run_, config.jobs(sizes.throughput_jobs), "broker",
                                sizes.stall_s, budget_s=sizes.run_budget_s)
    result: dict[str, Any] = {"broker": measured.as_dict(),
                              "redis_bytes_per_queued_job": round(queued_bytes, 1),
                              "queued_probe_jobs": probe}
    if profiles is not None:
        result["profile"] = profiles.summaries
        log(f"  profiles (py-spy raw stacks) in {profiles.out_dir}")
    return result
