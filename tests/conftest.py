"""Fixtures: a redis-server of the suite's own, and a running broker for integration tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.cluster import LocalCluster
from broker.localstack import EmbeddedRedis
from tests.support import running_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder, so `-m "not faults"` and friends work."""
    for item in items:
        path = str(item.fspath)
        if "/integration/" in path:
            item.add_marker(pytest.mark.integration)
        if "/faults/" in path:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A private redis-server on a free port for the whole session."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; the test command installs it (make test)")
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Redis, the simulated provider (20 ms) and every worker of the test catalog."""
    tmp: Path = tmp_path_factory.mktemp("cluster")
    with running_cluster(tmp, "--latency", "20") as (running, _server):
        yield running
