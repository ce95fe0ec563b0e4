"""Scenario 2: baselines on the same upstream: naive Celery, direct clients, LiteLLM."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench import config, redisstats
from bench.baselines.ceiling import litellm_available
from bench.baselines.naive_app import ENV_CONCURRENCY, ENV_URL, TASK, create_app
from bench.harness import Infra
from bench.measure import Measured, per_job_ms
from bench.procstats import RssSampler
from bench.progress import Ticker, log
from bench.scenarios import Context
from bench.waiting import poll_until_done
from broker.localstack import ProcessGroup

NAIVE_GROUPS = ("producer", "naive", "redis")
_META = "celery-task-meta-"


def _finished_at(meta: dict[str, Any]) -> float:
    stamp = datetime.fromisoformat(str(meta.get("date_done")))
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _wait_naive(infra: Infra, ids: list[str], stall_s: float, budget_s: float,
                ticker: Ticker | None) -> tuple[list[dict[str, Any]], int]:
    def fetch(chunk: list[str]) -> list[dict[str, Any] | None]:
        metas = [json.loads(raw) if raw else None
                 for raw in infra.redis.mget([_META + i for i in chunk])]
        return [m if m and m.get("status") in ("SUCCESS", "FAILURE") else None for m in metas]

    found, pending = poll_until_done(fetch, ids, stall_s=stall_s, budget_s=budget_s,
                                     ticker=ticker)
    return found, len(pending)


def _send(app: Any, url: str, start: int, count: int) -> list[str]:
    return [app.send_task(TASK, args=[url, config.chat_body(i)]).id
            for i in range(start, start + count)]


def naive(ctx: Context) -> dict[str, Any]:
    """One Celery task per job calling httpx, threads pool -c 256, Redis result backend."""
    infra, sizes, count = ctx.infra, ctx.sizes, ctx.sizes.naive_jobs
    log(f"baseline naive Celery: {count:,} jobs, threads -c {config.CAPACITY}")
    redisstats.flush(infra.redis)
    infra.reset_upstream()
    url = f"{infra.upstream}/v1/chat/completions"
    procs = ProcessGroup(infra.work_dir / "naive")
    procs.log_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(infra.server.url)
    try:
        procs.spawn("naive", [sys.executable, "-m", "celery", "-A", "bench.baselines.naive_app",
                              "worker", "-P", "threads", "-c", str(config.CAPACITY),
                              "-n", "naive@%h", "-l", "INFO"],
                    env={ENV_URL: infra.server.url, ENV_CONCURRENCY: str(config.CAPACITY),
                         "PYTHONUNBUFFERED": "1"})
        procs.wait_for_line("naive", "ready.", timeout=90)
        infra.watch.add("naive", procs.processes["naive"].pid)
        _wait_naive(infra, _send(app, url, 10_000_000, sizes.warmup_jobs), sizes.stall_s,
                    sizes.run_budget_s, None)
        infra.reset_upstream()
        commands_before = redisstats.command_counts(infra.redis)
        cpu_before = infra.watch.snapshot()
        started = time.time()
        with RssSampler(infra.watch) as rss:
            ids = _send(app, url, 0, count)
            metas, lost = _wait_naive(infra, ids, sizes.stall_s, sizes.run_budget_s,
                                      Ticker("naive", count))
        cpu = infra.watch.delta(cpu_before)
        commands = redisstats.command_delta(commands_before,
                                            redisstats.command_counts(infra.redis))
    finally:
        app.close()
        procs.stop_all()
        infra.watch.remove_group("naive")
    statuses = Counter(str(m.get("status")) for m in metas)
    done = statuses.get("SUCCESS", 0)
    elapsed = max(max((_finished_at(m) for m in metas), default=time.time()) - started, 1e-6)
    stats = infra.upstream_stats()
    measured = Measured(
        label="naive", jobs=count, finished=len(metas), succeeded=done, lost=lost,
        statuses=dict(statuses),
        elapsed_s=round(elapsed, 3), jobs_per_s=round(done / elapsed, 1),
        cpu_s={k: round(v, 3) for k, v in cpu.groups.items()},
        cpu_ms_per_job={k: per_job_ms(v, done) for k, v in cpu.groups.items()},
        broker_cpu_ms_per_job=per_job_ms(sum(cpu.groups.get(g, 0.0) for g in NAIVE_GROUPS),
                                         done),
        others_cpu_s=round(cpu.others(), 2),
        redis_commands_per_job=round(sum(commands.values()) / max(done, 1), 2),
        redis_top_commands=dict(list(commands.items())[:12]),
        peak_rss_mb={k: round(v, 1) for k, v in rss.peak.items()},
        upstream={"requests": stats.get("requests_total", 0),
                  "peak_in_flight": stats.get("peak_in_flight", 0),
                  "by_status": stats.get("by_status", {})})
    log(f"  naive: {done:,} in {elapsed:.1f} s = {measured.jobs_per_s:,.0f} jobs/s; CPU "
        f"{measured.broker_cpu_ms_per_job:.2f} ms/job" + (f"; LOST {lost:,}" if lost else ""))
    return measured.as_dict()


def ceiling(ctx: Context, client: str, count: int, rate: float | None = None) -> dict[str, Any]:
    """Run the direct client in its own process; its CPU is its own, the simulator's apart."""
    infra = ctx.infra
    infra.reset_upstream()
    args = [sys.executable, "-m", "bench.baselines.ceiling", "--url", infra.upstream,
            "--client", client, "--jobs", str(count), "--concurrency", str(config.CAPACITY),
            "--warmup", str(min(ctx.sizes.warmup_jobs, count))]
    if rate:
        args += ["--rate", str(rate)]
    budget = 60 + (count / rate if rate else count / 20)
    done = subprocess.run(args, capture_output=True, text=True, timeout=budget, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ceiling client {client} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    stats = infra.upstream_stats()
    result["upstream"] = {"requests": stats.get("requests_total", 0),
                          "peak_in_flight": stats.get("peak_in_flight", 0)}
    if not rate:
        result.pop("wall_ms", None)
        log(f"  ceiling {client}: {result['jobs_per_s']:,.0f} jobs/s; client CPU "
            f"{result['cpu_ms_per_job']:.3f} ms/job")
    return result


def run(ctx: Context) -> dict[str, Any]:
    """Every baseline, each on the same simulated provider as the broker."""
    sizes = ctx.sizes
    out: dict[str, Any] = {"naive": naive(ctx)}
    log(f"baseline ceiling: direct asyncio, semaphore {config.CAPACITY}")
    out["ceiling_aiohttp"] = ceiling(ctx, "aiohttp", sizes.ceiling_jobs)
    out["ceiling_httpx"] = ceiling(ctx, "httpx", sizes.ceiling_httpx_jobs)
    if litellm_available():
        out["litellm"] = ceiling(ctx, "litellm", sizes.ceiling_httpx_jobs)
    else:
        out["litellm"] = {"skipped": "litellm is not installed (optional baseline)"}
    return out
