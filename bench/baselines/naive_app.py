"""The naive broker a user would write first: one Celery task per job, calling httpx.

Workers: `NAIVE_REDIS_URL=... celery -A bench.baselines.naive_app worker -P threads -c 256`.
Producers build their own app with `create_app(url)` and send TASK by name.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
from celery import Celery

TASK = "naive.chat"
ENV_URL = "NAIVE_REDIS_URL"
ENV_CONCURRENCY = "NAIVE_CONCURRENCY"
_lock = threading.Lock()
_client: httpx.Client | None = None


def create_app(redis_url: str | None) -> Celery:
    """A Celery app with Redis as broker and result backend, JSON only, defaults otherwise."""
    app = Celery("naive", broker=redis_url, backend=redis_url)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                    result_expires=3600, broker_connection_retry_on_startup=True)
    return app


def _http() -> httpx.Client:
    """One pooled client per worker process, shared by the pool's threads."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                width = int(os.environ.get(ENV_CONCURRENCY, "256"))
                limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
                _client = httpx.Client(limits=limits, timeout=30.0)
    return _client


app = create_app(os.environ.get(ENV_URL))


@app.task(name=TASK)
def chat(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """Call the provider once and return its reply as the task result."""
    reply = _http().post(url, json=body)
    reply.raise_for_status()
    data: dict[str, Any] = reply.json()
    return data
