"""Taking a batch in: valid lines stored as unsent jobs while the file streams, then sent.

Lines are stored in pipelined chunks as they are validated; once every line is read the
batch opens (its jobs are sent to the policy queue) or fails (what was stored is removed).
Memory stays flat whatever the file's size: at most one chunk of lines is held at a time.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import redis

from broker import jobstore as js
from broker import keys
from broker.batch_files import BadLine, BatchLine
from broker.schemas import BatchLineError, BatchStatus

if TYPE_CHECKING:
    from broker.client import Client

CHUNK = 1000  # lines per Redis pipeline
SHOWN_ERRORS = 100  # refused lines kept in the batch record; all of them are in its list


class Ingest:
    """Stores one batch's lines as they are validated, then opens or fails the batch."""

    def __init__(self, client: Client, batch_id: str, key_hash: str, deadline: float,
                 ttl: int, skip_invalid: bool) -> None:
        self._client = client
        self._redis: redis.Redis = client.redis
        self.batch_id = batch_id
        self._key_hash = key_hash
        self._deadline = deadline
        self._ttl = ttl
        self._skip_invalid = skip_invalid
        # A job must stay runnable for the whole completion window.
        self._job_ttl = max(client.settings.payload_ttl_s, int(deadline - time.time()) + 3600)
        self._pending: list[BatchLine] = []
        self._refused: list[BadLine] = []
        self.shown: list[BatchLineError] = []
        self.endpoints: set[str] = set()
        self.stored = 0
        self.invalid = 0
        self.storing = True

    def accept(self, line: BatchLine) -> None:
        """Take a valid line (ignored once a bad line has doomed a strict batch)."""
        if not self.storing:
            return
        self._pending.append(line)
        if len(self.endpoints) < 2:
            self.endpoints.add(line.url)
        if len(self._pending) >= CHUNK:
            self._flush_jobs()

    def refuse(self, bad: BadLine) -> None:
        """Record a bad line; without skip_invalid, stop storing: the batch will fail."""
        self.invalid += 1
        if len(self.shown) < SHOWN_ERRORS:
            self.shown.append(bad.to_error())
        self._refused.append(bad)
        if not self._skip_invalid:
            self.storing = False
            self._pending.clear()
        if len(self._refused) >= CHUNK:
            self._flush_refused()

    def _flush_jobs(self) -> None:
        if not self._pending:
            return
        now = time.time()
        with self._redis.pipeline(transaction=False) as pipe:
            for offset, line in enumerate(self._pending):
                key = js.job_key(js.batch_job_id(self.batch_id, self.stored + offset))
                pipe.hset(key, mapping=js.encode_batch_job(  # type: ignore[arg-type]
                    line.body_json, self._key_hash, now, self._deadline))
                pipe.expire(key, self._job_ttl)
            pipe.rpush(keys.batch_custom_ids(self.batch_id),
                       *(line.custom_id for line in self._pending))
            pipe.expire(keys.batch_custom_ids(self.batch_id), self._ttl)
            pipe.execute()
        self.stored += len(self._pending)
        self._pending.clear()

    def _flush_refused(self) -> None:
        if not self._refused:
            return
        invalid_key = keys.batch_invalid(self.batch_id)
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(invalid_key, *(bad.to_error().model_dump_json() for bad in self._refused))
            pipe.expire(invalid_key, self._ttl)
            pipe.execute()
        self._refused.clear()

    def _outcome(self, status: BatchStatus) -> BatchStatus:
        if status is BatchStatus.CANCELLING:
            return BatchStatus.CANCELLED
        if (self.invalid and not self._skip_invalid) or self.stored == 0:
            return BatchStatus.FAILED
        return BatchStatus.IN_PROGRESS

    def open(self) -> BatchStatus:
        """After the last line: send every job, or fail/cancel the batch and drop its jobs."""
        if self.storing:
            self._flush_jobs()
        self._flush_refused()
        if self.stored == 0 and self.invalid == 0:
            self.shown.append(BatchLineError(code="empty_file",
                                             message="the input has no request lines"))
        bkey = keys.batch(self.batch_id)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(bkey)  # type: ignore[no-untyped-call]  # a cancel may come
                    outcome = self._outcome(BatchStatus(str(pipe.hget(bkey, "status"))))
                    stamp = repr(time.time())
                    fields = {"status": outcome.value, f"{outcome.value}_at": stamp,
                              "invalid": self.invalid,
                              "errors": json.dumps([e.model_dump() for e in self.shown]),
                              "endpoint": next(iter(self.endpoints)) if len(
                                  self.endpoints) == 1 else "",
                              "total": self.stored if outcome is BatchStatus.IN_PROGRESS else 0}
                    pipe.multi()
                    pipe.hset(bkey, mapping=fields)  # type: ignore[arg-type]
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        if outcome is BatchStatus.IN_PROGRESS:
            self._send()
        else:
            self._discard()
        return outcome

    def abort(self, reason: str) -> None:
        """End the batch `failed` when its submission broke off, and drop what was stored."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.batch(self.batch_id), mapping={
                "status": BatchStatus.FAILED.value, "failed_at": repr(time.time()), "total": 0,
                "errors": json.dumps([{"code": "submission_interrupted", "message": reason}])})
            pipe.execute()
        self._discard()

    def _send(self) -> None:
        size = self._client.settings.batch_size
        for start in range(0, self.stored, size):
            stop = min(start + size, self.stored)
            self._client.send_ids(
                [js.batch_job_id(self.batch_id, index) for index in range(start, stop)], "batch")

    def _discard(self) -> None:
        for start in range(0, self.stored, CHUNK):
            stop = min(start + CHUNK, self.stored)
            self._redis.delete(*(js.job_key(js.batch_job_id(self.batch_id, index))
                                 for index in range(start, stop)))
        self._redis.delete(keys.batch_custom_ids(self.batch_id))
