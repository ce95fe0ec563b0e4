"""The local supervisor: a worker that dies on its own is started again; a stop is a stop."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from broker.localstack import ProcessGroup
from broker.schemas import JobStatus
from tests.support import chat_job, client_for, running_cluster, wait_until


def test_a_sigkilled_worker_is_restarted_and_serves_jobs_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aibroker.localstack")
    with running_cluster(tmp_path, "--latency", "20") as (cluster, _server):
        old = cluster.procs.processes["model.large-a"]
        os.killpg(old.pid, signal.SIGKILL)
        def replaced() -> subprocess.Popen[bytes] | None:
            current = cluster.procs.processes["model.large-a"]
            return current if current is not old else None

        new = wait_until(replaced, 30, "the killed worker was started again")
        assert new is not None
        with client_for(cluster) as client:
            handles = client.submit_many(
                [chat_job("chat-large", "alpha", f"after restart {i}") for i in range(20)])
            results = client.wait_all(handles, timeout=120)
        alive = new.poll() is None
    assert new.pid != old.pid and alive
    assert Counter(r.status for r in results) == {JobStatus.SUCCEEDED: 20}
    lines = [r.getMessage() for r in caplog.records if "restarted it as pid" in r.getMessage()]
    assert lines == [f"model.large-a (pid {old.pid}) exited with status -9; "
                     f"restarted it as pid {new.pid}"]


def test_restarts_are_capped_and_a_deliberate_stop_is_final(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path, max_restarts=2, restart_window_s=60) as procs:
        procs.spawn("crashy", [sys.executable, "-c", "raise SystemExit(3)"], restart=True)
        # Two restarts, then the child that keeps dying is left dead.
        wait_until(lambda: "crashy" not in procs._supervised, 30, "the restart cap was hit")
        assert len(procs._restarts["crashy"]) == 2
        assert procs.processes["crashy"].wait(timeout=10) == 3
        procs.spawn("steady", [sys.executable, "-c", "import time; time.sleep(60)"],
                    restart=True)
        procs.kill("steady")
        assert procs.restart_exited() == []
        assert "steady" not in procs.processes
