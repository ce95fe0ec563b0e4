"""No prompt text or API key reaches Flower's API or the worker logs."""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from broker.client import Client
from broker.cluster import LocalCluster
from broker.localstack import free_port
from broker.schemas import JobStatus
from tests.support import chat_job, client_for, wait_until

PROMPT_SENTINEL = "SENTINEL-PROMPT-7f3a9c"
FLOWER_AUTH = "ops:flower-test-pass"


def _get(url: str, auth: str | None = FLOWER_AUTH) -> Any:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())


def _flower_tasks(port: int) -> dict[str, Any]:
    try:
        tasks: dict[str, Any] = _get(f"http://127.0.0.1:{port}/api/tasks")
    except OSError:
        return {}
    return tasks


def _tasks_of(port: int, job_ids: list[str]) -> dict[str, Any]:
    """Flower's tasks whose arguments carry one of these jobs (tasks take job ids only)."""
    return {task_id: task for task_id, task in _flower_tasks(port).items()
            if any(job_id in str(task.get("args")) for job_id in job_ids)}


def _until_flower_listens(port: int, client: Client) -> None:
    """Flower subscribes to task events after it starts listening: run jobs until one shows."""
    warm_up: list[str] = []

    def listed() -> bool:
        handle = client.submit(chat_job("chat-small", "alpha", "flower warm-up"))
        handle.result(timeout=60)
        warm_up.append(handle.id)
        return bool(_tasks_of(port, warm_up))

    wait_until(listed, 60, "Flower lists a task", interval=0.5)


def _both_stages(port: int, job_ids: list[str]) -> dict[str, Any]:
    tasks = _tasks_of(port, job_ids)
    names = {task.get("name") for task in tasks.values()}
    return tasks if {"aibroker.policy", "aibroker.model"} <= names else {}


def test_flower_and_logs_never_show_prompts_or_keys(cluster: LocalCluster) -> None:
    port = free_port()
    cluster.procs.spawn("flower", [sys.executable, "-m", "celery", "-A", "broker.app", "flower",
                                   f"--port={port}", "--address=127.0.0.1",
                                   f"--basic-auth={FLOWER_AUTH}"], env=cluster.env)
    cluster.procs.wait_for_line("flower", "Visit me at", timeout=60)
    key_sentinel = "sk-test-alpha-0123456789"
    with client_for(cluster) as client:
        _until_flower_listens(port, client)
        handles = client.submit_many([chat_job("chat-small", "alpha", f"{PROMPT_SENTINEL} {i}")
                                      for i in range(5)])
        results = client.wait_all(handles, timeout=60)
    assert all(r.status is JobStatus.SUCCEEDED for r in results)

    tasks = wait_until(lambda: _both_stages(port, [h.id for h in handles]), 60,
                       "Flower lists the jobs' policy and model tasks", interval=0.5)
    with pytest.raises(urllib.error.HTTPError, match="401"):
        _get(f"http://127.0.0.1:{port}/api/tasks", auth=None)
    names = {task["name"] for task in tasks.values()}
    assert {"aibroker.policy", "aibroker.model"} <= names
    flower_text = json.dumps(_get(f"http://127.0.0.1:{port}/api/tasks")) + json.dumps(
        _get(f"http://127.0.0.1:{port}/api/workers"))
    logs = "".join(cluster.procs.log(name) for name in ("gateway", "model.small-a",
                                                          "model.small-b", "flower"))
    for sentinel in (PROMPT_SENTINEL, key_sentinel):
        assert sentinel not in flower_text
        assert sentinel not in logs
    # The prompt did travel, by Redis under the job id: the upstream saw it.
    logged = json.dumps(cluster.upstream_requests())
    assert PROMPT_SENTINEL in logged
