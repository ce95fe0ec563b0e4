"""The CLI on a running broker: the example catalog as written, usage, audit, pipes, the demo."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.cluster import LocalCluster
from broker.localstack import EmbeddedRedis
from broker.workerplan import gateway_worker, model_worker
from tests.unit.test_cli_errors import EXAMPLE, sample_commands

SAMPLE_DEPLOYMENT = "llama-inhouse"  # the deployment the sample command's model runs on
ISO_HOUR = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:00Z$")


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker.cli.main", *args],
                          env={**os.environ, "COLUMNS": "200", **env}, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def example_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The example catalog as published, its in-house deployment served by the simulator."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    with EmbeddedRedis() as server, LocalCluster(tmp_path_factory.mktemp("example"),
                                                 server.url) as cluster:
        upstream = cluster.start_upstream("upstream", "--latency", "5", "--seed", "3")
        for model in data["models"].values():
            for deployment in model["deployments"]:
                if deployment["name"] == SAMPLE_DEPLOYMENT:
                    deployment["base_url"] = f"{upstream}/v1"
        catalog = cluster.write_catalog(data)
        cluster.start_workers([gateway_worker(catalog), model_worker(catalog, SAMPLE_DEPLOYMENT)])
        yield cluster


@pytest.fixture(scope="module")
def sample_run(example_stack: LocalCluster) -> subprocess.CompletedProcess[str]:
    """The example catalog's sample submit, word for word, against the stack."""
    words = next(w for w in sample_commands() if "submit" in w)
    at = words.index("aibroker")
    written = dict(assignment.split("=", 1) for assignment in words[:at])
    assert written["AIBROKER_CONFIG"] == "examples/aibroker.yaml"
    # The stack's copy of that file differs only in where llama-inhouse answers.
    return _cli({**written, **example_stack.env}, *words[at + 1:])


def test_the_example_sample_submit_works_as_written(
        sample_run: subprocess.CompletedProcess[str]) -> None:
    assert sample_run.returncode == 0, sample_run.stderr + sample_run.stdout
    results = [json.loads(line) for line in sample_run.stdout.splitlines()]
    assert [(r["status"], r["tenant"], r["route"]["deployment"]) for r in results] == [
        ("succeeded", "support", SAMPLE_DEPLOYMENT)]


def test_usage_by_hour_reads_as_an_iso_time(example_stack: LocalCluster,
                                            sample_run: subprocess.CompletedProcess[str]) -> None:
    assert sample_run.returncode == 0, sample_run.stderr
    shown = _cli(example_stack.env, "usage", "--by", "tenant,hour", "--format", "json")
    table = _cli(example_stack.env, "usage", "--by", "hour")
    rows = json.loads(shown.stdout)
    assert [row["tenant"] for row in rows] == ["support"]
    assert ISO_HOUR.match(rows[0]["hour"]), rows
    assert rows[0]["hour"] in table.stdout
    assert isinstance(rows[0]["requests"], int)


def test_audit_json_keeps_numbers(example_stack: LocalCluster,
                                  sample_run: subprocess.CompletedProcess[str]) -> None:
    assert sample_run.returncode == 0, sample_run.stderr
    shown = _cli(example_stack.env, "audit", "--tenant", "support", "--format", "json")
    entries = json.loads(shown.stdout)
    assert [(e["decision"], e["lane"]) for e in entries] == [("admitted", "batch")]
    assert isinstance(entries[0]["input_tokens"], int)
    assert entries[0]["input_tokens"] > 0


def test_status_into_a_closed_pipe_ends_quietly(example_stack: LocalCluster) -> None:
    env = {**os.environ, **example_stack.env}
    read_end, write_end = os.pipe()
    os.close(read_end)  # what `| head -c 10` leaves once head has exited
    try:
        closed = subprocess.run([sys.executable, "-m", "broker.cli.main", "status", "--format",
                                 "json"], env=env, stdout=write_end, stderr=subprocess.PIPE,
                                text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    pipeline = f"{shlex.quote(sys.executable)} -m broker.cli.main status --format json | head -c 10"
    piped = subprocess.run(["bash", "-c", pipeline], env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert (closed.returncode, closed.stderr) == (141, "")
    assert (piped.returncode, piped.stderr, len(piped.stdout)) == (0, "", 10)


def test_the_demo_keeps_its_logs_when_asked() -> None:
    env = {name: value for name, value in os.environ.items() if name != "AIBROKER_REDIS_URL"}
    done = subprocess.run([sys.executable, "-m", "broker.cli.main", "demo", "--keep-logs",
                           "--latency", "uniform:2:10"], env={**env, "COLUMNS": "400"},
                          capture_output=True, text=True, timeout=600, check=False)
    found = re.search(r"^logs kept in (\S+)$", done.stdout, re.MULTILINE)
    assert found is not None, done.stdout[-3000:] + done.stderr[-3000:]
    logs = Path(found[1])
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert logs.is_dir()
        assert "ready." in (logs / "gateway.log").read_text(errors="replace")
        assert (logs / "upstream.log").stat().st_size > 0
    finally:
        shutil.rmtree(logs.parent, ignore_errors=True)
