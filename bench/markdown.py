"""The markdown report: one table per scenario, ratios against the same run's baselines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench import summary
from bench.config import CAPACITY, LATENCY_MS
from bench.scenarios.common import dig
from broker.catalog import BrokerSettings

Results = dict[str, dict[str, Any]]
GROUPS = ("producer", "gateway", "model", "redis")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: Any, pattern: str = "{:,.0f}") -> str:
    """A number formatted, or n/a."""
    return "n/a" if value is None else pattern.format(value)


def _ms(stats: dict[str, Any] | None) -> list[str]:
    stats = stats or {}
    return [num(stats.get(k), "{:.2f}") for k in ("p50", "p95", "p99", "max")]


def header(facts: dict[str, Any], sizes: dict[str, Any]) -> str:
    """Title, machine and method."""
    packages = ", ".join(f"{k} {v}" for k, v in facts.get("packages", {}).items())
    mode = "quick (smoke sizes; indicative only)" if sizes.get("quick") else "full"
    dirty = " (uncommitted changes)" if facts.get("git_dirty") else ""
    return "\n".join([
        f"# ai-broker benchmark: {facts['date']} on {facts['host']}", "",
        f"- machine: {facts['cpu_model']}, {facts['cpus']} CPUs, {facts['memory_gb']} GB; "
        f"{facts['platform']}",
        f"- software: Python {facts['python']}, Redis {facts.get('redis', '?')}; {packages}",
        f"- commit {facts.get('git_commit') or '?'}{dirty}; mode {mode}; "
        f"run took {num(facts.get('duration_s'), '{:.0f}')} s; load average "
        f"{facts.get('load_at_start')} at start, {facts.get('load_at_end')} at end",
        f"- method: simulated OpenAI-compatible provider at {LATENCY_MS:g} ms fixed latency on "
        "the same machine (its CPU is shown apart and never counted as the broker's). CPU is "
        "user+system time read from the OS (psutil). Broker CPU = producer (the bench process) "
        "+ gateway worker + model workers + Redis. CPU ms per job equals CPU seconds per "
        "1,000 jobs. Baselines run in the same session on the same provider; ratios compare "
        "figures of this run only. Every process runs a copy of the sources taken when the "
        "run started." + (" PROFILED RUN: py-spy was attached during the throughput run."
                          if facts.get("profiled") else ""),
    ])


def targets_section(results: Results) -> str:
    """The targets of issue 7."""
    mark = {True: "met", False: "**missed**", None: "not run"}
    rows = [(t.name, t.goal, t.measured, mark[t.met]) for t in summary.targets(results)]
    return "## Targets (issue 7)\n\n" + table(("target", "goal", "measured", "result"), rows)


def _run_row(name: str, run: dict[str, Any] | None, naive: dict[str, Any] | None,
             ceiling: dict[str, Any] | None) -> list[str]:
    if not run:
        return [name] + ["n/a"] * 10
    cpu = run.get("cpu_ms_per_job", {})
    total = run.get("broker_cpu_ms_per_job", run.get("cpu_ms_per_job"))
    total = total if isinstance(total, float | int) else None
    rate = run.get("jobs_per_s")
    return [name, num(run.get("finished", run.get("ok"))), num(rate),
            num(rate / naive["jobs_per_s"] if naive and rate else None, "{:.2f}x"),
            num(rate / ceiling["jobs_per_s"] if ceiling and rate else None, "{:.0%}"),
            num(total, "{:.3f}"),
            " / ".join(num(cpu.get(g), "{:.2f}") for g in (*GROUPS, "naive"))
            if isinstance(cpu, dict) else "client only",
            num(cpu.get("simulator") if isinstance(cpu, dict) else None, "{:.2f}"),
            num(run.get("redis_commands_per_job"), "{:.1f}"),
            num(run.get("lost"), "{:,}"), num(run.get("elapsed_s"), "{:.1f}")]


def throughput_section(results: Results) -> str:
    """Scenario 1, 2 and the transport choice in one table."""
    naive = dig(results, "baselines", "naive")
    ceiling = dig(results, "baselines", "ceiling_aiohttp")
    rows = [
        _run_row(f"broker ({BrokerSettings().http_transport} transport, default)",
                 dig(results, "throughput", "broker"),
                 naive, ceiling),
        _run_row("broker (httpx transport)", dig(results, "transport", "runs", "httpx"),
                 naive, ceiling),
        _run_row(f"naive Celery: task per job, httpx, threads -c {CAPACITY}", naive, naive,
                 ceiling),
        _run_row(f"ceiling: asyncio + aiohttp, {CAPACITY} in flight", ceiling, naive, ceiling),
        _run_row(f"ceiling: asyncio + httpx, {CAPACITY} in flight",
                 dig(results, "baselines", "ceiling_httpx"), naive, ceiling),
    ]
    litellm = dig(results, "baselines", "litellm")
    if litellm and "skipped" not in litellm:
        rows.append(_run_row("LiteLLM Router", litellm, naive, ceiling))
    head = ("run", "jobs", "jobs/s", "x naive", "% of ceiling", "CPU ms/job (all but sim.)",
            "producer / gateway / model / redis / naive worker", "simulator ms/job",
            "Redis cmds/job", "lost", "s")
    ratios = summary.throughput_ratios(results)
    lines = [f"## 1-2. Throughput and cost: {CAPACITY} in flight, {LATENCY_MS:g} ms upstream",
             "", table(head, rows), "",
             f"- broker CPU per job vs naive: {num(ratios['cpu_vs_naive'], '{:.2f}x')}; vs the "
             f"aiohttp ceiling's client CPU: {num(ratios['cpu_vs_ceiling_aiohttp'], '{:.1f}x')}",
             f"- Redis memory per queued job (workers stopped): "
             f"{num(dig(results, 'throughput', 'redis_bytes_per_queued_job'))} bytes"]
    if litellm and "skipped" in litellm:
        lines.append(f"- LiteLLM: skipped, {litellm['skipped']}")
    for label, path in (("broker", ("throughput", "broker")), ("naive", ("baselines", "naive"))):
        top = dig(results, *path, "redis_top_commands")
        done = dig(results, *path, "finished")
        if top and done:
            lines.append(f"- Redis commands per job, {label}: " + ", ".join(
                f"{name} {count / done:.2f}" for name, count in list(top.items())[:8]))
    return "\n".join(lines)


def transport_section(results: Results) -> str:
    """Each HTTP stack of the model worker on the same workload."""
    t = results.get("transport")
    if not t or "error" in t or "runs" not in t:
        return ""
    rows = []
    for name, run in t["runs"].items():
        mark = " (default)" if name == t["default"] else ""
        rows.append([f"`{name}`{mark}", f"{run['finished']:,}", num(run["jobs_per_s"]),
                     num(t["jobs_per_s_over_default"].get(name), "{:.2f}x"),
                     num(run["cpu_ms_per_job"].get("model"), "{:.2f}"),
                     num(t["model_cpu_over_default"].get(name), "{:.2f}x"),
                     t["sources"].get(name, "")])
    return "\n".join([
        "## Transport choice (model worker `broker.http_transport`)", "",
        table(["transport", "jobs", "jobs/s", "vs default", "model CPU ms/job",
               "vs default", "measured in"], rows)])


def latency_section(results: Results) -> str:
    """Scenario 3."""
    lat = results.get("latency")
    if not lat or "error" in lat:
        return ""
    rows = [["broker: result timings total - upstream call", *_ms(
                lat["result_total_minus_upstream_ms"])],
            ["broker: producer wall (submit to result) - upstream call",
             *_ms(lat["wall_minus_upstream_ms"])],
            [f"broker: producer wall - {LATENCY_MS:g} ms configured",
             *_ms(lat["wall_minus_configured_latency_ms"])],
            [f"direct aiohttp client: wall - {LATENCY_MS:g} ms configured",
             *_ms(dig(lat, "direct_client", "wall_minus_configured_latency_ms"))],
            ["broker: upstream call as the model worker timed it", *_ms(lat["upstream_call_ms"])],
            ["broker: queued (total - policy - upstream)", *_ms(lat["queued_ms"])],
            ["broker hop 1: submit to admitted by the gateway",
             *_ms(lat.get("submit_to_admitted_ms"))],
            ["broker hop 2: admitted to result stored, minus upstream call",
             *_ms(lat.get("admitted_to_finished_minus_upstream_ms"))],
            ["producer: result stored to seen by the waiting producer",
             *_ms(lat.get("result_to_producer_ms"))]]
    return (f"## 3. Added latency at low load ({lat['jobs']:,} interactive jobs, paced)\n\n"
            + table(("ms", "p50", "p95", "p99", "max"), rows))
