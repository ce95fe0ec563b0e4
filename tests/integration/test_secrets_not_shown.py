"""No prompt text or API key reaches Flower's API or the worker logs."""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from broker.cluster import LocalCluster
from broker.localstack import free_port
from broker.schemas import JobStatus
from tests.support import chat_job, client_for

PROMPT_SENTINEL = "SENTINEL-PROMPT-7f3a9c"
FLOWER_AUTH = "ops:flower-test-pass"


def _get(url: str, auth: str | None = FLOWER_AUTH) -> Any:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())


def _flower_tasks(port: int, expected: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    tasks: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            tasks = _get(f"http://127.0.0.1:{port}/api/tasks")
        except OSError:
            tasks = {}
        names = {task.get("name") for task in tasks.values()}
        if len(tasks) >= expected and {"aibroker.policy", "aibroker.model"} <= names:
            return tasks
        time.sleep(0.5)
    raise AssertionError(f"Flower listed {len(tasks)} tasks: {tasks}")


def test_flower_and_logs_never_show_prompts_or_keys(cluster: LocalCluster) -> None:
    port = free_port()
    cluster.procs.spawn("flower", [sys.executable, "-m", "celery", "-A", "broker.app", "flower",
                                   f"--port={port}", "--address=127.0.0.1",
                                   f"--basic-auth={FLOWER_AUTH}"], env=cluster.env)
    cluster.procs.wait_for_line("flower", "Visit me at", timeout=60)
    time.sleep(1.0)  # Flower subscribes to events after it starts listening
    key_sentinel = "sk-test-alpha-0123456789"
    with client_for(cluster) as client:
        handles = client.submit_many([chat_job("chat-small", "alpha", f"{PROMPT_SENTINEL} {i}")
                                      for i in range(5)])
        results = client.wait_all(handles, timeout=60)
    assert all(r.status is JobStatus.SUCCEEDED for r in results)

    tasks = _flower_tasks(port, 2)
    with pytest.raises(urllib.error.HTTPError, match="401"):
        _get(f"http://127.0.0.1:{port}/api/tasks", auth=None)
    names = {task["name"] for task in tasks.values()}
    assert {"aibroker.policy", "aibroker.model"} <= names
    flower_text = json.dumps(tasks) + json.dumps(_get(f"http://127.0.0.1:{port}/api/workers"))
    logs = "".join(cluster.procs.log(name) for name in ("gateway", "model.small-a",
                                                          "model.small-b", "flower"))
    for sentinel in (PROMPT_SENTINEL, key_sentinel):
        assert sentinel not in flower_text
        assert sentinel not in logs
    # The prompt did travel, by Redis under the job id: the upstream saw it.
    logged = json.dumps(cluster.upstream_requests())
    assert PROMPT_SENTINEL in logged
