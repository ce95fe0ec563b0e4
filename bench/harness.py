"""The bench's own broker: Redis and the simulated provider for the session, workers per run."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench import redisstats
from bench.config import LATENCY_MS
from bench.procstats import ProcWatch, own_pid
from bench.progress import log
from broker.client import Client
from broker.cluster import LocalCluster
from broker.localstack import EmbeddedRedis
from broker.workerplan import WorkerSpec


@dataclass
class Infra:
    """Redis, the simulated provider and the process watch shared by every run."""

    work_dir: Path
    server: EmbeddedRedis
    sim: LocalCluster
    upstream: str
    watch: ProcWatch
    redis: redis.Redis

    def _sim_call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        url = f"{self.upstream}{path}"  # the simulator's own http:// URL
        request = urllib.request.Request(url, data=data, method=method,  # noqa: S310
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
            return json.loads(reply.read())

    def upstream_stats(self) -> dict[str, Any]:
        """The simulated provider's counters since the last reset."""
        stats: dict[str, Any] = self._sim_call("GET", "/_sim/stats")
        return stats

    def reset_upstream(self) -> None:
        """Zero the simulated provider's counters."""
        self._sim_call("POST", "/_sim/reset", {})

    def configure_upstream(self, **knobs: Any) -> None:
        """Change simulated-provider settings at run time (e.g. max_concurrency)."""
        self._sim_call("PATCH", "/_sim/config", knobs)


@contextmanager
def infra(work_dir: Path) -> Iterator[Infra]:
    """Start a private Redis and the simulated provider at 50 ms fixed latency."""
    with EmbeddedRedis() as server, LocalCluster(work_dir / "sim", server.url) as sim:
        upstream = sim.start_upstream("upstream", "--latency", f"{LATENCY_MS:g}", "--seed", "7",
                                      "--request-log-size", "0")
        watch = ProcWatch()
        watch.add("producer", own_pid(), children=False)
        assert server.process is not None
        watch.add("redis", server.process.pid)
        watch.add("simulator", sim.procs.processes["upstream"].pid)
        client = redisstats.connect(server.url)
        log(f"redis {redisstats.version(client)} on {server.url}; simulator on {upstream}")
        try:
            yield Infra(work_dir, server, sim, upstream, watch, client)
        finally:
            client.close()


def worker_group(name: str) -> str:
    """The process group a worker's CPU is counted in."""
    return "gateway" if name == "gateway" else "model"


@dataclass
class BrokerRun:
    """One broker configuration: its catalog, workers and a producer client."""

    infra: Infra
    cluster: LocalCluster
    client: Client

    def start_workers(self, specs: list[WorkerSpec] | None = None) -> list[str]:
        """Start the workers the catalog implies (or the given ones) and watch their CPU."""
        started = time.monotonic()
        names = self.cluster.start_workers(specs)
        for name in names:
            self.infra.watch.add(worker_group(name), self.cluster.procs.processes[name].pid)
        log(f"  workers up in {time.monotonic() - started:.1f} s: {', '.join(names)}")
        return names

    def worker_errors(self, limit: int = 5) -> list[str]:
        """The commonest ERROR lines of the workers' logs so far (task ids blanked)."""
        return log_errors(self.cluster.procs.log_dir, limit)


_LEVEL = re.compile(r"(ERROR|CRITICAL)/\S+\] (.*)")
_TASK_ID = re.compile(r"\[[0-9a-f-]{36}\]")


def log_errors(log_dir: Path, limit: int = 5) -> list[str]:
    """Counted ERROR/CRITICAL messages of every log in a directory, commonest first."""
    seen: Counter[str] = Counter()
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            found = _LEVEL.search(line)
            if found:
                seen[f"{path.stem}: {_TASK_ID.sub('[..]', found.group(2))[:200]}"] += 1
    return [f"{count}x {message}" for message, count in seen.most_common(limit)]


@contextmanager
def broker(infra_: Infra, name: str, catalog: dict[str, Any]) -> Iterator[BrokerRun]:
    """A fresh broker on an empty Redis; workers start when the scenario says so."""
    redisstats.flush(infra_.redis)
    infra_.reset_upstream()
    cluster = LocalCluster(infra_.work_dir / name, infra_.server.url)
    try:
        cluster.write_catalog(catalog)
        with Client(cluster.catalog) as client:
            yield BrokerRun(infra_, cluster, client)
    finally:
        cluster.stop()
        for group in ("gateway", "model"):
            infra_.watch.remove_group(group)
