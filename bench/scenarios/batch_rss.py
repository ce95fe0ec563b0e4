"""The producer's peak RSS while it validates and queues a 1,000,000-line batch file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import config, redisstats
from bench.progress import log
from bench.scenarios import Context
from broker.cluster import LocalCluster

# Runs the batch CLI in this very process, then reports the process's own peak RSS.
PEAK_RSS_CLI = ("import resource, sys\n"
             "from broker.cli.main import main\n"
             "status = main(sys.argv[1:])\n"
             "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "print(f'peak_rss_kb={peak}', file=sys.stderr)\n"
             "sys.exit(status)\n")
_LINE = ('{"custom_id":"row-%d","method":"POST","url":"/v1/chat/completions","body":'
         '{"model":"' + config.MODEL + '","max_tokens":16,"messages":[{"role":"user",'
         '"content":"summarise record %d of the nightly export in one line"}]}}\n')


def _write_file(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, lines, 10_000):
            handle.write("".join(_LINE % (i, i) for i in range(start, min(start + 10_000,
                                                                           lines))))


def measure(ctx: Context, lines: int) -> dict[str, Any]:
    """Submit a `lines`-line file with no workers running; the jobs stay queued."""
    infra = ctx.infra
    work = infra.work_dir / "batch-rss"
    work.mkdir(parents=True, exist_ok=True)
    source = work / "batch.jsonl"
    _write_file(source, lines)
    log(f"memory: submitting a {lines:,}-line batch file "
        f"({source.stat().st_size / 1e6:,.0f} MB) with no workers running")
    redisstats.flush(infra.redis)
    cluster = LocalCluster(work, infra.server.url)
    try:
        cluster.write_catalog(config.catalog(infra.upstream))
        env = {**os.environ, **cluster.env, "AIBROKER_API_KEY": config.TENANT_KEY}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", PEAK_RSS_CLI, "batch", "submit", str(source),
                               "--format", "json"], env=env, capture_output=True, text=True,
                              timeout=1800, check=False)
        elapsed = time.monotonic() - started
    finally:
        cluster.stop()
        source.unlink(missing_ok=True)
        redisstats.flush(infra.redis)  # about a kilobyte of Redis per queued job
    if done.returncode != 0 or "peak_rss_kb=" not in done.stderr:
        return {"lines": lines, "error": done.stderr[-500:]}
    batch = json.loads(done.stdout)
    peak_mb = int(done.stderr.rsplit("peak_rss_kb=", 1)[1].split()[0]) / 1024
    log(f"  {lines:,} lines queued in {elapsed:.1f} s; producer peak RSS {peak_mb:.1f} MiB")
    return {"lines": lines, "queued": batch["request_counts"]["total"],
            "status": batch["status"], "seconds": round(elapsed, 1),
            "lines_per_s": round(lines / elapsed), "peak_rss_mb": round(peak_mb, 1)}
