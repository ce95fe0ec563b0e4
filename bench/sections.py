"""Markdown sections of scenarios 4-7 and the worker errors seen during the run."""

from __future__ import annotations

from typing import Any

from bench.markdown import Results, num, table


def scaling_section(results: Results, chart: str | None) -> str:
    """Scenario 4."""
    s = results.get("scaling")
    if not s or "error" in s:
        return ""
    head = ("model processes", "capacity", "jobs/s", "limit (capacity / latency)",
            "share of limit", "broker CPU ms/job", "peak in flight", "lost")
    rows = [(p["processes"], p["capacity"], num(p["jobs_per_s"]), num(p["limit_jobs_per_s"]),
             num(p["share_of_limit"], "{:.0%}"), num(p["broker_cpu_ms_per_job"], "{:.2f}"),
             p["peak_in_flight"], p["lost"])
            for p in [*s["by_processes"], *s["by_capacity"][:-1]]]
    text = f"## 4. Scaling ({s['jobs']:,} jobs per point)\n\n" + table(head, rows)
    return text + (f"\n\n![scaling]({chart})" if chart else "")


def capacity_section(results: Results) -> str:
    """Scenario 5."""
    c = results.get("capacity")
    if not c or "error" in c:
        return ""
    conc, rpm = c["concurrency"], c["rpm"]
    rows = [(f"concurrency {conc['configured_concurrency']} (provider 429s beyond it)",
             num(conc["limit_jobs_per_s"]), num(conc["jobs_per_s"]),
             num(conc["fidelity"], "{:.0%}"),
             f"peak in flight {conc['peak_in_flight']}, {conc['upstream_429']} x 429"),
            (f"{rpm['configured_rpm']:,} RPM (window {rpm['window_s']} s)",
             num(rpm["limit_jobs_per_s"]), num(rpm["steady_jobs_per_s"]),
             num(rpm["fidelity"], "{:.0%}"),
             f"busiest window {rpm['busiest_window']:,} of {rpm['allowed_per_window']:,} "
             "allowed; the limiter checks window + 1 one-second buckets, so it can use at "
             f"most {rpm['window_s']}/{rpm['window_s'] + 1} of a window it enforces exactly"
             + ("" if rpm["enforced"] else f"; NOT enforced: {rpm['note']}"))]
    return "## 5. Capacity fidelity\n\n" + table(
        ("deployment", "configured jobs/s",
         "achieved jobs/s (RPM: mean sliding window after the first)",
         "achieved / configured", "notes"), rows)


def _batch_line(batch: dict[str, Any] | None) -> str:
    if not batch:
        return "- producer RSS while submitting a batch file: not measured"
    if "error" in batch:
        return f"- producer RSS for a {batch['lines']:,}-line batch: failed ({batch['error']})"
    return (f"- producer peak RSS while validating and queueing a {batch['lines']:,}-line batch "
            f"file: {batch['peak_rss_mb']:.1f} MiB ({batch['queued']:,} jobs queued in "
            f"{batch['seconds']:.0f} s, {batch['lines_per_s']:,} lines/s; no workers ran)")


def memory_section(results: Results, chart: str | None) -> str:
    """Scenario 6."""
    m = results.get("memory")
    if not m or "error" in m:
        return ""
    idle = m["idle_mb"]
    rows: list[tuple[Any, ...]] = [("idle, after start", "-", num(idle["gateway"], "{:.1f}"),
                                    num(idle["model"], "{:.1f}"), "-")]
    for r in m["rounds"]:
        peak = r["peak_under_load_mb"]
        rows.append((f"after {r['jobs_so_far']:,} jobs", num(r["jobs_per_s"]),
                     f"{r['rss_after_mb']['gateway']:.1f} (peak {peak['gateway']:.1f})",
                     f"{r['rss_after_mb']['model']:.1f} (peak {peak['model']:.1f})",
                     f"{peak['producer']:.1f}"))
    growth = m["growth_first_to_last"]
    text = "\n".join([
        "## 6. Memory (RSS, MiB)", "",
        table(("point", "jobs/s", "gateway worker", "model worker", "producer peak"), rows), "",
        f"- growth {m['growth_span']}: " + ", ".join(
            f"{g} {num(v, '{:+.1%}')}" for g, v in growth.items()),
        _batch_line(m.get("producer_batch"))])
    return text + (f"\n\n![memory]({chart})" if chart else "")


def tokenizer_section(results: Results) -> str:
    """Scenario 7."""
    t = results.get("tokenizer")
    if not t or "error" in t:
        return ""
    rows = [(f"{p['input_tokens']:,}", p["counted"], num(p["us_per_job"], "{:,.1f}"),
             num(p["share_of_cpu_budget"], "{:.0%}")) for p in t["points"]]
    return (f"## 7. Tokenizer cost ({t['encoding']}, broker.tokens.count_chat)\n\n"
            + table(("input tokens", "counted (with framing)", "µs per job",
                     f"share of the {t['cpu_budget_ms_per_job']} ms/job budget"), rows))


def _runs(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every measured run in the results tree, with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "statuses" in node or "worker_errors" in node:
            found.append((where, node))
        for key, value in node.items():
            found += _runs(value, f"{where}/{key}" if where else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _runs(value, f"{where}[{index}]")
    return found


def problems_section(results: Results) -> str:
    """Scenario failures, lost jobs and worker log errors, so no figure hides them."""
    lines: list[str] = []
    for name, result in results.items():
        if "error" in result:
            lines.append(f"- scenario `{name}` failed: {result['error']}")
    seen: set[int] = set()
    for where, run in _runs(results):
        if id(run) in seen:
            continue
        seen.add(id(run))
        failed = {k: v for k, v in run.get("statuses", {}).items()
                  if k not in ("succeeded", "SUCCESS")}
        if run.get("lost"):
            lines.append(f"- {where}: {run['lost']:,} jobs never finished")
        if failed:
            lines.append(f"- {where}: jobs that did not succeed: {failed}")
        lines += [f"- {where} error `{code}`: {text}"
                  for code, text in run.get("failures", {}).items()]
        lines += [f"- {where} worker log: `{error}`" for error in run.get("worker_errors", [])]
    return "## Problems seen during the run\n\n" + "\n".join(lines) if lines else ""


def profile_section(results: Results) -> str:
    """Where each broker process spent its CPU during the profiled throughput run."""
    profiles = (results.get("throughput") or {}).get("profile")
    if not profiles:
        return ""
    parts = ["## Profile of the throughput run (py-spy; this run's figures are perturbed)"]
    for name, summary in profiles.items():
        rows = [(f"{pct:.1f}%", f"`{func}`") for pct, func in summary["inclusive"][:12]]
        own = ", ".join(f"`{func}` {pct:.1f}%" for pct, func in summary["self"][:6])
        parts.append(f"### {name} ({summary['samples']:,} active samples)\n\n"
                     + table(("inclusive", "function"), rows) + f"\n\n- on top: {own}")
    return "\n\n".join(parts)
