"""A 1,000,000-line batch file is validated and queued by a process that stays small.

Slow (about two minutes and ~1 GB of Redis): deselect with `-m "not slow"`. No workers run,
so the jobs stay queued; the figure that matters is the submitting process's peak RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from bench.scenarios.batch_rss import PEAK_RSS_CLI
from broker import keys
from broker.cluster import LocalCluster
from broker.localstack import EmbeddedRedis
from broker.queues import POLICY_QUEUE
from tests.support import KEYS, make_catalog

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

LINES = 1_000_000
PEAK_RSS_LIMIT_MB = 200


def _write_file(path: Path) -> None:
    template = ('{"custom_id":"row-%d","method":"POST","url":"/v1/chat/completions",'
                '"body":{"model":"%s","max_tokens":16,"messages":[{"role":"user",'
                '"content":"summarise record %d of the nightly export in one line"}]}}\n')
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, LINES, 10_000):
            handle.write("".join(template % (i, "chat-small" if i % 2 else "chat-large", i)
                                 for i in range(start, start + 10_000)))


def test_million_line_file_is_submitted_in_bounded_memory(tmp_path: Path) -> None:
    source = tmp_path / "million.jsonl"
    _write_file(source)
    with EmbeddedRedis(appendonly=False) as server, LocalCluster(tmp_path, server.url) as cluster:
        cluster.write_catalog(make_catalog("http://127.0.0.1:9"))  # no workers: jobs stay queued
        env = {**os.environ, **cluster.env, "AIBROKER_API_KEY": KEYS["alpha"]}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", PEAK_RSS_CLI, "batch", "submit", str(source),
                               "--format", "json"], env=env, capture_output=True, text=True,
                              timeout=1100, check=False)
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-2000:]
        batch = json.loads(done.stdout)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        stored = client.llen(keys.batch_custom_ids(batch["id"]))
        messages = client.llen(POLICY_QUEUE) + sum(
            client.llen(f"{POLICY_QUEUE}:{step}") for step in (3, 6, 9))
        redis_mb = int(client.info("memory")["used_memory"]) / 1e6
    peak_mb = int(done.stderr.rsplit("peak_rss_kb=", 1)[1].split()[0]) / 1024
    print(f"\n1,000,000 lines ({source.stat().st_size / 1e6:.0f} MB): submitted in "
          f"{elapsed:.1f} s ({LINES / elapsed:,.0f} lines/s), peak RSS {peak_mb:.1f} MB, "
          f"Redis {redis_mb:.0f} MB, {messages:,} queue messages")
    assert batch["status"] == "in_progress"
    assert batch["request_counts"]["total"] == stored == LINES
    assert messages == -(-LINES // 16)  # the test catalog's batch_size
    assert peak_mb < PEAK_RSS_LIMIT_MB
