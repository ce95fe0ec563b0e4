"""One measured broker run: submit jobs, wait for every result, read CPU and Redis figures."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import redisstats
from bench.harness import BrokerRun
from bench.procstats import RssSampler
from bench.progress import Ticker, log
from broker.backend import read_results
from broker.client import Client
from broker.schemas import JobResult, Lane

BROKER_GROUPS = ("producer", "gateway", "model", "redis")
_POLL_CHUNK = 1000


@dataclass
class Measured:
    """What one run did and what it cost; CPU in seconds, per-job figures in ms."""

    label: str
    jobs: int
    finished: int
    lost: int
    statuses: dict[str, int]
    elapsed_s: float
    jobs_per_s: float
    cpu_s: dict[str, float]
    cpu_ms_per_job: dict[str, float]
    broker_cpu_ms_per_job: float
    others_cpu_s: float
    redis_commands_per_job: float
    redis_top_commands: dict[str, int]
    peak_rss_mb: dict[str, float]
    worker_errors: list[str] = field(default_factory=list)
    upstream: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    finish_times: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures (without the per-job finish times)."""
        figures = asdict(self)
        figures.pop("finish_times")
        return figures


def wait_results(client: Client, ids: list[str], stall_s: float,
                 ticker: Ticker | None = None,
                 budget_s: float = 600.0) -> tuple[list[JobResult], list[str]]:
    """Poll results (pipelined MGET) until all are in, none arrives for `stall_s`, or the
    time budget is spent; returns the results and the ids still unfinished."""
    pending = list(ids)
    found: list[JobResult] = []
    last_progress = started = time.monotonic()
    delay = 0.02
    while pending:
        still: list[str] = []
        for start in range(0, len(pending), _POLL_CHUNK):
            chunk = pending[start:start + _POLL_CHUNK]
            for job_id, result in zip(chunk, read_results(client.redis, chunk), strict=True):
                if result is None:
                    still.append(job_id)
                else:
                    found.append(result)
        if len(still) < len(pending):
            last_progress, delay = time.monotonic(), 0.02
        elif time.monotonic() - last_progress > stall_s:
            log(f"  no result for {stall_s:.0f} s: {len(still):,} jobs never finished")
            return found, still
        if still and time.monotonic() - started > budget_s:
            log(f"  time budget of {budget_s:.0f} s spent: {len(still):,} jobs unfinished")
            return found, still
        pending = still
        if ticker is not None:
            ticker.update(len(found))
        if pending:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
    return found, []


def per_job_ms(seconds: float, jobs: int) -> float:
    """CPU seconds as milliseconds per job (the same number as CPU-s per 1,000 jobs)."""
    return round(seconds * 1000 / jobs, 4) if jobs else 0.0


def require_all(results: list[JobResult], lost: list[str], what: str) -> None:
    """Stop the scenario when the broker cannot finish even a few jobs (it is broken)."""
    if lost:
        raise RuntimeError(f"{len(lost):,} of {len(results) + len(lost):,} {what} jobs never "
                           "finished; see the worker logs")


def run_jobs(run: BrokerRun, jobs: list[dict[str, Any]], label: str, stall_s: float,
             priority: Lane | None = None, budget_s: float = 600.0) -> Measured:
    """Submit `jobs`, wait for all of them, and measure the run end to end."""
    watch, client = run.infra.watch, run.client
    run.infra.reset_upstream()
    commands_before = redisstats.command_counts(run.infra.redis)
    cpu_before = watch.snapshot()
    started = time.time()
    with RssSampler(watch) as rss:
        handles = client.submit_many(jobs, priority=priority)
        ticker = Ticker(label, len(jobs))
        results, lost = wait_results(client, [h.id for h in handles], stall_s, ticker,
                                     budget_s)
    wall = time.time() - started
    cpu = watch.delta(cpu_before)
    commands = redisstats.command_delta(commands_before,
                                        redisstats.command_counts(run.infra.redis))
    last = max((r.finished_at for r in results), default=started + wall)
    elapsed = max(last - started, 1e-6)
    done = len(results)
    broker_cpu = sum(cpu.groups.get(g, 0.0) for g in BROKER_GROUPS)
    stats = run.infra.upstream_stats()
    measured = Measured(
        label=label, jobs=len(jobs), finished=done, lost=len(lost),
        statuses=dict(Counter(r.status.value for r in results)), elapsed_s=round(elapsed, 3),
        jobs_per_s=round(done / elapsed, 1),
        cpu_s={k: round(v, 3) for k, v in cpu.groups.items()},
        cpu_ms_per_job={k: per_job_ms(v, done) for k, v in cpu.groups.items()},
        broker_cpu_ms_per_job=per_job_ms(broker_cpu, done),
        others_cpu_s=round(cpu.others(), 2),
        redis_commands_per_job=round(sum(commands.values()) / max(done, 1), 2),
        redis_top_commands=dict(list(commands.items())[:12]),
        peak_rss_mb={k: round(v, 1) for k, v in rss.peak.items()},
        worker_errors=run.worker_errors(),
        upstream={"requests": stats.get("requests_total", 0),
                  "peak_in_flight": stats.get("peak_in_flight", 0),
                  "by_status": stats.get("by_status", {})},
        started_at=started, finish_times=sorted(r.finished_at for r in results),
    )
    log(f"  {label}: {done:,}/{len(jobs):,} in {elapsed:.1f} s = {measured.jobs_per_s:,.0f} "
        f"jobs/s; broker CPU {measured.broker_cpu_ms_per_job:.2f} ms/job "
        f"({', '.join(f'{g} {measured.cpu_ms_per_job.get(g, 0):.2f}' for g in BROKER_GROUPS)})"
        + (f"; LOST {len(lost):,}" if lost else ""))
    return measured
