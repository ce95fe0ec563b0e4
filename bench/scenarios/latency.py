"""Scenario 3: latency the broker adds at low load (10 jobs/s), interactive lane."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bench import config
from bench.harness import BrokerRun, broker
from bench.progress import Ticker, log
from bench.scenarios import Context
from bench.scenarios.baselines import ceiling
from bench.scenarios.common import warm_up
from bench.stats import summary
from broker import jobstore as js
from broker.schemas import JobResult

Sample = tuple[JobResult, float]  # the result and the producer-observed wall time in ms


def _wait(run: BrokerRun, job_id: str, submitted: float) -> Sample:
    result = run.client.wait(job_id, timeout=60)
    return result, (time.perf_counter() - submitted) * 1000


def paced(run: BrokerRun, count: int, rate: float) -> list[Sample]:
    """Submit one interactive job every 1/rate s; each waiter blocks on its job's done list."""
    futures: list[Future[Sample]] = []
    ticker = Ticker("latency", count, every_s=10)
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="bench-wait") as pool:
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            submitted = time.perf_counter()
            handle = run.client.submit_many([config.job(i)], priority="interactive")[0]
            futures.append(pool.submit(_wait, run, handle.id, submitted))
            ticker.update(i + 1)
        return [future.result() for future in futures]


def _hops(run: BrokerRun, ok: list[Sample]) -> dict[str, Any]:
    """Split the added time at the gateway's admission stamp in each job's hash."""
    with run.client.redis.pipeline(transaction=False) as pipe:
        for result, _ in ok:
            pipe.hmget(js.job_key(result.id), [js.F_SUBMITTED, js.F_ADMITTED])
        stamps = pipe.execute()
    to_admitted, admitted_to_done = [], []
    for (result, _), (submitted, admitted) in zip(ok, stamps, strict=True):
        if submitted and admitted:
            to_admitted.append((float(admitted) - float(submitted)) * 1000)
            admitted_to_done.append((result.finished_at - float(admitted)) * 1000
                                    - result.timings.upstream)
    return {"submit_to_admitted_ms": summary(to_admitted),
            "admitted_to_finished_minus_upstream_ms": summary(admitted_to_done),
            "result_to_producer_ms": summary([w - r.timings.total for r, w in ok])}


def _broker_figures(run: BrokerRun, samples: list[Sample]) -> dict[str, Any]:
    ok = [(r, wall) for r, wall in samples if r.ok]
    timings = [r.timings for r, _ in ok]
    return {
        **_hops(run, ok),
        "jobs": len(samples), "succeeded": len(ok),
        "result_total_minus_upstream_ms": summary([t.total - t.upstream for t in timings]),
        "wall_minus_upstream_ms": summary([w - r.timings.upstream for r, w in ok]),
        "wall_minus_configured_latency_ms": summary([w - config.LATENCY_MS for _, w in ok]),
        "upstream_call_ms": summary([t.upstream for t in timings]),
        "queued_ms": summary([t.queued for t in timings]),
        "policy_ms": summary([t.policy for t in timings]),
    }


def run(ctx: Context) -> dict[str, Any]:
    """Broker at 10 jobs/s, then the direct aiohttp client at the same pace, same upstream."""
    sizes, infra = ctx.sizes, ctx.infra
    log(f"latency: {sizes.latency_jobs:,} interactive jobs at {sizes.latency_rate:g}/s")
    with broker(infra, "latency", config.catalog(infra.upstream)) as run_:
        run_.start_workers()
        warm_up(run_, min(sizes.warmup_jobs, 100), sizes.stall_s)
        figures = _broker_figures(run_, paced(run_, sizes.latency_jobs, sizes.latency_rate))
        figures["worker_errors"] = run_.worker_errors()
    direct = ceiling(ctx, "aiohttp", max(sizes.latency_jobs // 5, 50), sizes.latency_rate)
    walls = [float(w) for w in direct.pop("wall_ms")]
    figures["direct_client"] = {"client": "aiohttp", "jobs": len(walls),
                                "wall_minus_configured_latency_ms":
                                    summary([w - config.LATENCY_MS for w in walls])}
    added = figures["result_total_minus_upstream_ms"]
    wall = figures["wall_minus_upstream_ms"]
    log(f"  added latency: result timings p50 {added.get('p50')} / p99 {added.get('p99')} ms; "
        f"producer wall - upstream p50 {wall.get('p50')} / p99 {wall.get('p99')} ms")
    return figures
