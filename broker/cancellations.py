"""Cancellations announced to model workers: a short-lived set of job and batch ids.

A job's own cancel flag stops it when a worker picks it up; jobs a worker already holds
(waiting for capacity behind others) learn of it from this set, which workers re-read
every half second, and stop before their upstream call.
"""

from __future__ import annotations

import time

import redis

from broker import jobstore as js
from broker import keys

BATCH_MEMBER = "batch:"


def announce(client: redis.Redis, *, job_ids: tuple[str, ...] = (), batch_id: str | None = None,
             keep_s: float) -> None:
    """Add cancelled ids to the set and drop entries older than `keep_s`."""
    now = time.time()
    members = {job_id: now for job_id in job_ids}
    if batch_id is not None:
        members[f"{BATCH_MEMBER}{batch_id}"] = now
    if not members:
        return
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.cancellations(), members)
        pipe.zremrangebyscore(keys.cancellations(), "-inf", now - keep_s)
        pipe.expire(keys.cancellations(), int(keep_s) + 60)
        pipe.execute()


def is_cancelled(job_id: str, announced: frozenset[str]) -> bool:
    """Whether `job_id` or its batch is among the announced cancellations."""
    if job_id in announced:
        return True
    in_batch = js.batch_of(job_id)
    return in_batch is not None and f"{BATCH_MEMBER}{in_batch[0]}" in announced
