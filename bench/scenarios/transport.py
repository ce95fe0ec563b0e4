"""The model worker's HTTP stack: every `broker.http_transport` on the same workload."""

from __future__ import annotations

from typing import Any

from bench import config
from bench.scenarios import Context
from bench.scenarios.common import dig, measure_broker, ratio
from broker.catalog import BrokerSettings
from workers.http import TRANSPORTS


def run(ctx: Context) -> dict[str, Any]:
    """The same broker with each transport; jobs/s and CPU per job, ratios to the default."""
    count, upstream = ctx.sizes.transport_jobs, ctx.infra.upstream
    default = BrokerSettings().http_transport
    runs: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for transport in TRANSPORTS:
        reused = dig(ctx.results, "throughput", "broker")
        if transport == default and reused and reused.get("finished"):
            runs[transport], sources[transport] = reused, "the throughput scenario's run"
            continue
        runs[transport] = measure_broker(
            ctx, f"transport-{transport}",
            config.catalog(upstream, http_transport=transport), count).as_dict()
        sources[transport] = "its own run"
    base = runs[default]
    return {
        "default": default, "runs": runs, "sources": sources,
        "jobs_per_s_over_default": {
            name: ratio(run["jobs_per_s"], base["jobs_per_s"]) for name, run in runs.items()},
        "model_cpu_over_default": {
            name: ratio(run["cpu_ms_per_job"].get("model"), base["cpu_ms_per_job"].get("model"))
            for name, run in runs.items()},
    }
