"""Issue 7's targets, each checked against the figures of this run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench.scenarios.common import dig, ratio

Results = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Target:
    """One target: what was asked, what was measured, whether it was met (None: not run)."""

    name: str
    goal: str
    measured: str
    met: bool | None


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def throughput_ratios(results: Results) -> dict[str, float | None]:
    """Broker jobs/s over each baseline's, and broker CPU per job over each baseline's."""
    broker = dig(results, "throughput", "broker", "jobs_per_s")
    cpu = dig(results, "throughput", "broker", "broker_cpu_ms_per_job")
    return {
        "x_naive": ratio(broker, dig(results, "baselines", "naive", "jobs_per_s")),
        "of_ceiling_aiohttp": ratio(broker, dig(results, "baselines", "ceiling_aiohttp",
                                                "jobs_per_s")),
        "of_ceiling_httpx": ratio(broker, dig(results, "baselines", "ceiling_httpx",
                                              "jobs_per_s")),
        "cpu_vs_naive": ratio(cpu, dig(results, "baselines", "naive", "broker_cpu_ms_per_job")),
        "cpu_vs_ceiling_aiohttp": ratio(cpu, dig(results, "baselines", "ceiling_aiohttp",
                                                 "cpu_ms_per_job")),
    }


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def targets(results: Results) -> list[Target]:
    """Every target of issue 7 with this run's figure."""
    r = throughput_ratios(results)
    cpu = dig(results, "throughput", "broker", "broker_cpu_ms_per_job")
    added = dig(results, "latency", "result_total_minus_upstream_ms") or {}
    wall = dig(results, "latency", "wall_minus_upstream_ms") or {}
    conc = dig(results, "capacity", "concurrency", "fidelity")
    rpm = dig(results, "capacity", "rpm", "fidelity")
    rpm_enforced = dig(results, "capacity", "rpm", "enforced")
    growth = dig(results, "memory", "growth_first_to_last") or {}
    worst = max((abs(v) for v in growth.values() if v is not None), default=None)
    p50, p99 = added.get("p50"), added.get("p99")
    return [
        Target("throughput vs naive Celery", ">= 8x", _fmt(r["x_naive"], "{:.2f}x"),
               _at_least(r["x_naive"], 8)),
        Target("throughput vs ceiling (aiohttp)", ">= 80%",
               _fmt(r["of_ceiling_aiohttp"], "{:.0%}"), _at_least(r["of_ceiling_aiohttp"], 0.8)),
        Target("broker CPU per job (producer+gateway+model+Redis)", "<= 0.75 ms",
               _fmt(cpu, "{:.2f} ms"), _at_most(cpu, 0.75)),
        Target("added latency p50 (result timings)", "<= 5 ms", _fmt(p50, "{:.1f} ms"),
               _at_most(p50, 5)),
        Target("added latency p99 (result timings)", "<= 20 ms", _fmt(p99, "{:.1f} ms"),
               _at_most(p99, 20)),
        Target("added latency p50 / p99 (producer wall - upstream)", "<= 5 / 20 ms",
               f"{_fmt(wall.get('p50'), '{:.1f}')} / {_fmt(wall.get('p99'), '{:.1f}')} ms",
               None if not wall else bool(wall["p50"] <= 5 and wall["p99"] <= 20)),
        Target("capacity fidelity, concurrency 32", ">= 90%", _fmt(conc, "{:.0%}"),
               None if conc is None else 0.9 <= conc <= 1.1),
        Target("capacity fidelity, RPM-limited (mean sliding-window use; busiest window "
               "within the limit)", ">= 90%", _fmt(rpm, "{:.0%}") + (
                   "" if rpm_enforced is not False else ", limit exceeded"),
               None if rpm is None else rpm >= 0.9 and rpm_enforced is True),
        Target("worker RSS growth over the memory rounds", "within 10%",
               _fmt(worst, "{:.1%}"), _at_most(worst, 0.10)),
    ]


def as_json(results: Results) -> dict[str, Any]:
    """Targets and ratios, JSON-ready."""
    return {"targets": [asdict(t) for t in targets(results)],
            "ratios": throughput_ratios(results)}
