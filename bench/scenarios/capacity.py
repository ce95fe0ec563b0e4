"""Scenario 5: capacity fidelity: achieved / configured for concurrency and RPM limits."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from bench import config
from bench.progress import log
from bench.scenarios import Context
from bench.scenarios.common import measure_broker

CONCURRENCY = 32
NOT_ENFORCED = ("the broker went past the configured RPM: global RPM limiting is not in "
                "effect in this build")


def concurrency_limited(ctx: Context) -> dict[str, Any]:
    """Capacity 32 on a provider that answers 429 beyond 32 calls in flight."""
    infra = ctx.infra
    limit = CONCURRENCY / (config.LATENCY_MS / 1000)
    infra.configure_upstream(max_concurrency=CONCURRENCY)
    try:
        measured = measure_broker(ctx, "capacity-concurrency",
                                  config.catalog(infra.upstream, concurrency=CONCURRENCY),
                                  ctx.sizes.capacity_jobs)
    finally:
        infra.configure_upstream(max_concurrency=0)
    by_status = measured.upstream.get("by_status", {})
    result = {"configured_concurrency": CONCURRENCY, "limit_jobs_per_s": limit,
              "jobs_per_s": measured.jobs_per_s,
              "fidelity": round(measured.jobs_per_s / limit, 3),
              "peak_in_flight": measured.upstream.get("peak_in_flight"),
              "upstream_429": int(by_status.get("429", 0)), "lost": measured.lost,
              "statuses": measured.statuses, "failures": measured.failures,
              "worker_errors": measured.worker_errors}
    log(f"  concurrency {CONCURRENCY}: {measured.jobs_per_s:,.0f}/{limit:,.0f} jobs/s = "
        f"{result['fidelity']:.0%}; peak in flight {result['peak_in_flight']}, "
        f"{result['upstream_429']} answered 429")
    return result


def busiest_window(times: list[float], window_s: float) -> int:
    """The most finish times inside any sliding window of `window_s` seconds."""
    return max((bisect_left(times, t + window_s) - i for i, t in enumerate(times)), default=0)


def mean_window_use(times: list[float], window_s: float, start: float,
                    step_s: float = 0.05) -> float | None:
    """Average finishes per sliding window, the windows opening every `step_s` from `start`.

    Windows open at evenly spaced times (not at finishes, which would favour bursts) and
    must end by the last finish; `start` leaves out the first window, a burst the limit
    allows at once.
    """
    if not times:
        return None
    opens = [start + i * step_s for i in range(int((times[-1] - window_s - start) / step_s) + 1)]
    if not opens:
        return None
    counts = [bisect_left(times, t + window_s) - bisect_left(times, t) for t in opens]
    return sum(counts) / len(counts)


def rpm_limited(ctx: Context) -> dict[str, Any]:
    """A deployment limited to `rpm`, with a short sliding window so the run stays short."""
    sizes = ctx.sizes
    limit, window = sizes.rpm / 60, sizes.rpm_window_s
    allowed = int(sizes.rpm * window / 60)
    measured = measure_broker(ctx, "capacity-rpm",
                              config.catalog(ctx.infra.upstream, rpm=sizes.rpm,
                                             capacity={"window_s": window}), sizes.rpm_jobs)
    busiest = busiest_window(measured.finish_times, window)
    mean_use = mean_window_use(measured.finish_times, window, measured.started_at + window)
    fidelity = None if mean_use is None else round(mean_use / allowed, 3)
    steady = None if mean_use is None else mean_use / window
    enforced = busiest <= allowed * 1.1
    result = {"configured_rpm": sizes.rpm, "window_s": window, "limit_jobs_per_s": limit,
              "allowed_per_window": allowed, "busiest_window": busiest,
              "jobs_per_s": measured.jobs_per_s,
              "steady_jobs_per_s": None if steady is None else round(steady, 1),
              "fidelity": fidelity, "enforced": enforced, "lost": measured.lost,
              "note": "" if enforced else NOT_ENFORCED, "statuses": measured.statuses,
              "failures": measured.failures, "worker_errors": measured.worker_errors}
    log(f"  rpm {sizes.rpm:,} (window {window} s): {result['steady_jobs_per_s']} jobs/s on "
        f"average over sliding windows, {limit:,.0f} allowed; busiest window {busiest}/{allowed}"
        + ("" if enforced else " (NOT enforced)"))
    return result


def run(ctx: Context) -> dict[str, Any]:
    """Both limits, each on a fresh broker."""
    return {"concurrency": concurrency_limited(ctx), "rpm": rpm_limited(ctx)}
