"""Smoke run of the benchmark: `python -m bench --quick --only throughput` must keep working."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
@pytest.mark.timeout(180)
def test_quick_throughput_run_writes_json_and_markdown(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; the test command installs it (make test)")
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "throughput", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    [json_path] = out.glob("*-quick.json")
    document = json.loads(json_path.read_text())
    broker = document["results"]["throughput"]["broker"]
    assert broker["jobs_per_s"] > 0
    assert broker["finished"] == broker["jobs"]
    assert document["results"]["throughput"]["redis_bytes_per_queued_job"] > 0
    markdown = json_path.with_suffix(".md")
    assert markdown.exists()
    assert "Throughput and cost" in markdown.read_text()
    assert not (out / "LATEST.md").exists()  # a quick run never replaces the latest full report
