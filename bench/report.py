"""Write the run's JSON, markdown and charts; LATEST.md follows complete runs."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import charts, markdown, sections, summary
from bench.config import Sizes


def render(facts: dict[str, Any], sizes: dict[str, Any], results: markdown.Results,
           chart_names: dict[str, str]) -> str:
    """The whole markdown report."""
    parts = [
        markdown.header(facts, sizes),
        markdown.targets_section(results),
        markdown.throughput_section(results)
        + (f"\n\n![throughput]({chart_names['throughput']})" if "throughput" in chart_names
           else ""),
        markdown.transport_section(results),
        markdown.latency_section(results),
        sections.scaling_section(results, chart_names.get("scaling")),
        sections.capacity_section(results),
        sections.memory_section(results, chart_names.get("memory")),
        sections.tokenizer_section(results),
        sections.profile_section(results),
        sections.problems_section(results),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def write(out: Path, facts: dict[str, Any], sizes: Sizes, results: markdown.Results,
          *, complete: bool) -> list[Path]:
    """Write `<date>-<host>.json`, `.md` and PNG charts; quick and partial runs get a suffix."""
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if complete else ("-quick" if sizes.quick else "-partial")
    stem = f"{facts['date']}-{facts['host']}{suffix}"
    chart_paths = charts.draw(out, stem, results)
    document = {"meta": facts, "sizes": asdict(sizes), **summary.as_json(results),
                "results": results}
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    md_path = out / f"{stem}.md"
    names = {key: path.name for key, path in chart_paths.items()}
    md_path.write_text(render(facts, asdict(sizes), results, names), encoding="utf-8")
    written = [json_path, md_path, *chart_paths.values()]
    if complete:
        latest = out / "LATEST.md"
        shutil.copyfile(md_path, latest)
        written.append(latest)
    return written
