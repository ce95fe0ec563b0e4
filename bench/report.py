"""Write the run's JSON, markdown and charts."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.config import Sizes


def write(out: Path, facts: dict[str, Any], sizes: Sizes, results: dict[str, dict[str, Any]],
          *, complete: bool) -> list[Path]:
    """Write `<date>-<host>.json` and `.md` (and charts); LATEST.md for complete runs."""
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if complete else ("-quick" if sizes.quick else "-partial")
    stem = f"{facts['date']}-{facts['host']}{suffix}"
    document = {"meta": facts, "sizes": asdict(sizes), "results": results}
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    md_path = out / f"{stem}.md"
    md_path.write_text("# bench\n", encoding="utf-8")
    return [json_path, md_path]
