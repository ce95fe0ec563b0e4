"""Messages a worker cannot take: why they are refused, and where they go instead.

A refused message is counted in `aib:discarded` and its first bytes are kept, with its
queue and the reason, in a bounded list (`aib:quarantine`) for an operator to inspect;
its content never reaches the logs.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from broker import keys
from broker.queues import (
    MODEL_QUEUE_PREFIX,
    MODEL_TASK,
    POLICY_QUEUE,
    POLICY_TASK,
    ROUTE_QUEUE,
    ROUTE_TASK,
)

log = logging.getLogger("aibroker.transport")


TASKS = frozenset({POLICY_TASK, ROUTE_TASK, MODEL_TASK})


def _task_queue(queue: str) -> bool:
    return queue in (POLICY_QUEUE, ROUTE_QUEUE) or queue.startswith(MODEL_QUEUE_PREFIX)


def refusal(payload: object, queue: str) -> str | None:
    """Why a decoded envelope must not be delivered, or None if kombu may take it.

    A compressed body is refused before kombu inflates it: the broker never compresses
    its messages, and inflating one without a bound lets a few hundred kilobytes grow a
    worker by gigabytes. On a task queue, a message must name one of the broker's tasks
    and carry an id; Celery would otherwise drop it with its body in the log, uncounted.
    """
    if not isinstance(payload, dict):
        return "NotAnEnvelope"
    if not isinstance(payload.get("properties"), dict):
        return "BadProperties"
    headers = payload.get("headers")
    if headers is None:
        headers = {}
    if not isinstance(headers, dict):
        return "BadHeaders"
    if headers.get("compression"):
        return "Compressed"
    if _task_queue(queue):
        task = headers.get("task")
        if not isinstance(task, str) or task not in TASKS:
            return "NotABrokerTask"
        if not isinstance(headers.get("id"), str):
            return "BadTaskId"
    body = payload.get("body")
    if body is not None and not isinstance(body, str):
        return "BadBody"
    return None


def entry(queue: str, reason: str, raw: bytes) -> str:
    """The quarantine list entry of one refused message (raw bytes capped, base64)."""
    kept = raw[:keys.QUARANTINE_ENTRY_BYTES]
    return json.dumps({"at": round(time.time(), 3), "queue": queue, "reason": reason,
                       "size": len(raw), "truncated": len(kept) < len(raw),
                       "raw_b64": base64.b64encode(kept).decode("ascii")})


def record(client: Any, queue: str, reason: str, raw: bytes) -> None:
    """Count one refused message and keep it in the bounded quarantine list."""
    log.error("discarded a message on %s that is not a JSON envelope the broker takes (%s)",
              queue, reason)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.incr(keys.discarded_messages())
            pipe.lpush(keys.quarantine(), entry(queue, reason, raw))
            pipe.ltrim(keys.quarantine(), 0, keys.QUARANTINE_CAP - 1)
            pipe.execute()
    except Exception:  # recording is best effort; the consumer must keep going
        log.exception("could not record a discarded message")
