"""Scenario 6: RSS per worker type, idle and under load, and its growth over many jobs."""

from __future__ import annotations

import time
from typing import Any

from bench import config
from bench.harness import broker
from bench.measure import run_jobs
from bench.progress import log
from bench.scenarios import Context, batch_rss
from bench.scenarios.common import ratio

WORKER_GROUPS = ("gateway", "model")


def _settled_rss(ctx: Context) -> dict[str, float]:
    time.sleep(1.0)  # let the pools go idle so the reading is not mid-burst
    rss = ctx.infra.watch.rss_mb()
    return {group: round(rss.get(group, 0.0), 1) for group in WORKER_GROUPS}


def run(ctx: Context) -> dict[str, Any]:
    """Idle RSS after start, then rounds of jobs with the RSS after each round."""
    sizes, infra = ctx.sizes, ctx.infra
    log(f"memory: {sizes.memory_rounds} rounds of {sizes.memory_round_jobs:,} jobs")
    rounds: list[dict[str, Any]] = []
    with broker(infra, "memory", config.catalog(infra.upstream)) as run_:
        run_.start_workers()
        idle = _settled_rss(ctx)
        started = time.monotonic()
        for index in range(sizes.memory_rounds):
            if index >= 2 and time.monotonic() - started > sizes.memory_budget_s:
                log(f"  memory: time budget spent after {index} rounds")
                break
            measured = run_jobs(run_, config.jobs(sizes.memory_round_jobs,
                                                  start=index * sizes.memory_round_jobs),
                                f"memory round {index + 1}", sizes.stall_s,
                                budget_s=sizes.memory_budget_s / 2)
            after = _settled_rss(ctx)
            rounds.append({"jobs_so_far": (index + 1) * sizes.memory_round_jobs,
                           "rss_after_mb": after, "lost": measured.lost,
                           "peak_under_load_mb": {g: measured.peak_rss_mb.get(g, 0.0)
                                                  for g in (*WORKER_GROUPS, "producer")},
                           "jobs_per_s": measured.jobs_per_s, "statuses": measured.statuses,
                           "failures": measured.failures,
                           "worker_errors": measured.worker_errors})
    first, last = rounds[0]["rss_after_mb"], rounds[-1]["rss_after_mb"]
    growth = {group: ratio(last[group] - first[group], first[group]) if len(rounds) > 1
              else None for group in WORKER_GROUPS}
    log("  RSS idle " + ", ".join(f"{g} {idle[g]:.0f} MiB" for g in WORKER_GROUPS) +
        "; growth first->last round " +
        ", ".join(f"{g} {growth[g]:+.1%}" if growth[g] is not None else f"{g} n/a"
                  for g in WORKER_GROUPS))
    return {"idle_mb": idle, "rounds": rounds, "total_jobs": rounds[-1]["jobs_so_far"],
            "growth_first_to_last": growth,
            "growth_span": f"{rounds[0]['jobs_so_far']:,} -> {rounds[-1]['jobs_so_far']:,} jobs",
            "producer_batch": batch_rss.measure(ctx, sizes.batch_lines)}
