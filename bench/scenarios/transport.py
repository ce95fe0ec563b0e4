"""The model worker's HTTP transport: httpx over aiohttp (httpx-aiohttp) vs httpx's own pool."""

from __future__ import annotations

from typing import Any

from bench import config
from bench.scenarios import Context
from bench.scenarios.common import dig, measure_broker, ratio
from broker.catalog import BrokerSettings


def run(ctx: Context) -> dict[str, Any]:
    """The same broker with `http_transport: aiohttp` and `httpx`; jobs/s and CPU per job."""
    count, upstream = ctx.sizes.transport_jobs, ctx.infra.upstream
    aiohttp = dig(ctx.results, "throughput", "broker")
    if aiohttp and aiohttp.get("finished") and BrokerSettings().http_transport == "aiohttp":
        source = "the throughput scenario's run (aiohttp is the default transport)"
    else:
        aiohttp = measure_broker(ctx, "transport-aiohttp",
                                 config.catalog(upstream, http_transport="aiohttp"),
                                 count).as_dict()
        source = "its own run"
    httpx = measure_broker(ctx, "transport-httpx",
                           config.catalog(upstream, http_transport="httpx"), count).as_dict()
    return {
        "aiohttp": aiohttp, "httpx": httpx, "aiohttp_source": source,
        "jobs_per_s_aiohttp_over_httpx": ratio(aiohttp["jobs_per_s"], httpx["jobs_per_s"]),
        "broker_cpu_httpx_over_aiohttp": ratio(httpx["broker_cpu_ms_per_job"],
                                               aiohttp["broker_cpu_ms_per_job"]),
        "model_cpu_httpx_over_aiohttp": ratio(httpx["cpu_ms_per_job"].get("model"),
                                              aiohttp["cpu_ms_per_job"].get("model")),
    }
