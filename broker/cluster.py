"""A whole broker on one machine: Redis, the simulated provider and the workers a catalog implies.

The demo, the integration tests and the benchmarks all start their broker through this.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from broker.catalog import Catalog, parse_catalog
from broker.localstack import ProcessGroup
from broker.workerplan import WorkerSpec, plan


class LocalCluster:
    """Child processes of one local broker, stopped together."""

    def __init__(self, work_dir: Path, redis_url: str) -> None:
        self.work_dir = work_dir
        self.redis_url = redis_url
        self.procs = ProcessGroup(work_dir / "logs")
        self.procs.log_dir.mkdir(parents=True, exist_ok=True)
        self.catalog_path = work_dir / "aibroker.yaml"
        self.upstreams: dict[str, str] = {}
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        """The catalog the workers run with."""
        if self._catalog is None:
            raise RuntimeError("write_catalog() first")
        return self._catalog

    @property
    def env(self) -> dict[str, str]:
        """Environment for child processes and in-process clients."""
        return {"AIBROKER_CONFIG": str(self.catalog_path), "AIBROKER_REDIS_URL": self.redis_url,
                "PYTHONUNBUFFERED": "1"}

    def start_upstream(self, name: str = "upstream", *args: str) -> str:
        """Start a simulated provider on a free port; returns its base URL."""
        command = [sys.executable, "-m", "broker.cli.main", "upstream", "--port", "0", *args]
        line = self._spawn_and_wait(name, command, "listening on")
        url = line.rsplit(" ", 1)[-1].strip()
        self.upstreams[name] = url
        return url

    def _spawn_and_wait(self, name: str, command: list[str], ready: str) -> str:
        self.procs.spawn(name, command, env={"PYTHONUNBUFFERED": "1"})
        return self.procs.wait_for_line(name, ready, timeout=60)

    def write_catalog(self, data: dict[str, Any]) -> Catalog:
        """Validate and write the catalog the workers will read."""
        data = {**data, "broker": {**data.get("broker", {}), "redis_url": self.redis_url}}
        self._catalog = parse_catalog(data, self.catalog_path)
        self.catalog_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return self._catalog

    def start_worker(self, spec: WorkerSpec, name: str | None = None,
                     loglevel: str = "INFO") -> str:
        """Start one Celery worker (restarted if it exits on its own); wait until it consumes."""
        label = name or spec.name
        self.procs.spawn(label, spec.command(sys.executable, loglevel), env=self.env,
                         restart=True)
        self.procs.wait_for_line(label, "ready.", timeout=90)
        return label

    def start_workers(self, specs: list[WorkerSpec] | None = None) -> list[str]:
        """Start every worker the catalog implies (or the given ones), restarted if they exit."""
        specs = specs if specs is not None else plan(self.catalog)
        for spec in specs:
            self.procs.spawn(spec.name, spec.command(sys.executable), env=self.env, restart=True)
        for spec in specs:
            self.procs.wait_for_line(spec.name, "ready.", timeout=90)
        return [spec.name for spec in specs]

    def upstream_stats(self, name: str = "upstream") -> dict[str, Any]:
        """The simulated provider's own counters."""
        stats: dict[str, Any] = self._get_json(f"{self.upstreams[name]}/_sim/stats")
        return stats

    def upstream_requests(self, name: str = "upstream", limit: int = 100_000) -> Any:
        """The simulated provider's request log."""
        return self._get_json(f"{self.upstreams[name]}/_sim/requests?limit={limit}")

    @staticmethod
    def _get_json(url: str) -> Any:
        with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - local URL
            return json.loads(reply.read())

    def stop(self) -> None:
        """Stop every child process."""
        self.procs.stop_all()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
