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
from bench.waiting import poll_until_done
from broker.backend import read_results
from broker.client import Client
from broker.schemas import JobResult, Lane

BROKER_GROUPS = ("producer", "gateway", "model", "redis")


@dataclass
class Measured:
    """What one run did and what it cost; CPU in seconds, per-job figures in ms."""

    label: str
    jobs: int
    finished: int
    succeeded: int
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
    failures: dict[str, str] = field(default_factory=dict)
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
    """The results of `ids` as they arrive (see poll_until_done) and the ids unfinished."""
    def fetch(chunk: list[str]) -> list[JobResult | None]:
        return read_results(client.redis, chunk)

    return poll_until_done(fetch, ids, stall_s=stall_s, budget_s=budget_s, ticker=ticker)


def failure_reasons(results: list[JobResult]) -> dict[str, str]:
    """For each error code among the results: how many, and one message."""
    counts: Counter[str] = Counter()
    message: dict[str, str] = {}
    for result in results:
        if result.error is not None:
            counts[result.error.code] += 1
            message.setdefault(result.error.code, result.error.message[:160])
    return {code: f"{n}x {message[code]}" for code, n in counts.most_common()}


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
    statuses = Counter(r.status.value for r in results)
    ok = statuses.get("succeeded", 0)
    broker_cpu = sum(cpu.groups.get(g, 0.0) for g in BROKER_GROUPS)
    stats = run.infra.upstream_stats()
    measured = Measured(
        label=label, jobs=len(jobs), finished=len(results), succeeded=ok, lost=len(lost),
        statuses=dict(statuses), elapsed_s=round(elapsed, 3), jobs_per_s=round(ok / elapsed, 1),
        cpu_s={k: round(v, 3) for k, v in cpu.groups.items()},
        cpu_ms_per_job={k: per_job_ms(v, ok) for k, v in cpu.groups.items()},
        broker_cpu_ms_per_job=per_job_ms(broker_cpu, ok),
        others_cpu_s=round(cpu.others(), 2),
        redis_commands_per_job=round(sum(commands.values()) / max(ok, 1), 2),
        redis_top_commands=dict(list(commands.items())[:12]),
        peak_rss_mb={k: round(v, 1) for k, v in rss.peak.items()},
        worker_errors=run.worker_errors(), failures=failure_reasons(results),
        upstream={"requests": stats.get("requests_total", 0),
                  "peak_in_flight": stats.get("peak_in_flight", 0),
                  "by_status": stats.get("by_status", {})},
        started_at=started, finish_times=sorted(r.finished_at for r in results),
    )
    log(f"  {label}: {ok:,}/{len(jobs):,} succeeded in {elapsed:.1f} s = "
        f"{measured.jobs_per_s:,.0f} jobs/s; broker CPU "
        f"{measured.broker_cpu_ms_per_job:.2f} ms/job "
        f"({', '.join(f'{g} {measured.cpu_ms_per_job.get(g, 0):.2f}' for g in BROKER_GROUPS)})"
        + (f"; LOST {len(lost):,}" if lost else "")
        + (f"; NOT SUCCEEDED {len(results) - ok:,}" if len(results) > ok else ""))
    return measured
