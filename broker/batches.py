"""Batches: an OpenAI Batch JSONL file run as jobs, with status, counts, usage and results.

Statuses follow OpenAI: `validating` while the file streams in (payloads are stored, nothing
is sent), then `failed` (bad lines, unless skipped) or `in_progress` once every job is
queued; the ledger script (finish_job.lua) counts each ended job into the batch in the same
step that stores its result, and the job that makes done == total moves the batch through
`finalizing` to `completed`, `expired` (the completion window ran out on some job) or
`cancelled` (after `cancelling`). Job ids are `<batch id>-<index>`, so a batch keeps no id
list and a job's batch is known from its id alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from broker import cancellations, keys
from broker import jobstore as js
from broker.backend import aged_out, read_results
from broker.batch_files import BadLine, BatchFile, ResultLine, bad_line, result_line, spool
from broker.batch_ingest import Ingest
from broker.errors import JobNotFound, ValidationError
from broker.schemas import Batch, BatchLineError, BatchStatus

if TYPE_CHECKING:
    from broker.client import Client

Source = str | os.PathLike[str] | Iterable[str | bytes | Mapping[str, Any]]
ReadProgress = Callable[[int, int], None]  # bytes read, file size
_WINDOW = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_READ_CHUNK = 1000
_TIMESTAMPS = ("in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
               "expired_at", "cancelling_at", "cancelled_at")


def parse_window(text: str) -> int:
    """Seconds in a completion window such as `24h`, `90m` or `7d`."""
    match = _WINDOW.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise ValidationError(f"completion_window {text!r}: use a number and s, m, h or d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    items = dict(metadata or {})
    if len(items) > 16 or any(len(k) > 64 or len(str(v)) > 512 for k, v in items.items()):
        raise ValidationError("metadata: at most 16 pairs, keys up to 64 and values up to "
                              "512 characters")
    return {str(k): str(v) for k, v in items.items()}


def _stamp(value: str | None) -> int | None:
    return int(float(value)) if value else None


def decode_batch(fields: Mapping[str, str]) -> Batch:
    """A Batch from its Redis hash."""
    counts = {name[2:]: int(value) for name, value in fields.items() if name.startswith("n_")}
    succeeded = counts.get("succeeded", 0)
    done = int(fields.get("done", 0))
    prompt, completion = int(fields.get("prompt_tokens", 0)), int(
        fields.get("completion_tokens", 0))
    errors = json.loads(fields.get("errors") or "[]")
    return Batch.model_validate({
        "id": fields["id"], "endpoint": fields.get("endpoint") or None,
        "input_file": fields.get("input_file") or None,
        "completion_window": fields.get("window", ""), "status": fields["status"],
        "created_at": _stamp(fields.get("created_at")) or 0,
        **{name: _stamp(fields.get(name)) for name in _TIMESTAMPS},
        "request_counts": {"total": int(fields.get("total", 0)), "completed": succeeded,
                           "failed": done - succeeded},
        "by_status": counts,
        "usage": {"requests": int(fields.get("requests", 0)), "prompt_tokens": prompt,
                  "completion_tokens": completion, "total_tokens": prompt + completion,
                  "estimated": int(fields.get("estimated", 0))},
        "cost_usd": int(fields.get("cost_nanousd", 0)) / 1e9,
        "metadata": json.loads(fields.get("metadata") or "{}"),
        "errors": {"data": errors, "total": int(fields.get("invalid", 0))},
    })


class Batches:
    """`client.batches`: create, retrieve, wait for, read, cancel and list batches."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._redis: redis.Redis = client.redis
        self._settings = client.settings

    def create(self, source: Source, *, api_key: str, completion_window: str = "24h",
               metadata: Mapping[str, str] | None = None, idempotency_key: str | None = None,
               skip_invalid: bool = False, progress: ReadProgress | None = None) -> Batch:
        """Validate and queue a batch from a JSONL path or in-memory lines (streamed).

        With any bad line the batch ends `failed` and nothing runs, unless `skip_invalid`:
        then the valid lines run and the bad ones are reported in the errors output.
        """
        window_s = parse_window(completion_window)
        fields = {"status": BatchStatus.VALIDATING.value, "window": completion_window.strip(),
                  "metadata": json.dumps(_check_metadata(metadata))}
        if isinstance(source, (str, os.PathLike)):
            path, spooled = Path(source), False
            if not path.is_file():
                raise ValidationError(f"no such file: {path}")
            fields["input_file"] = str(path)
        else:
            path, spooled = spool(source), True
        try:
            batch_id, earlier = self._new_record(fields, api_key, window_s, idempotency_key)
            if earlier:  # the idempotency key already names a batch: that one it is
                return self.retrieve(batch_id)
            ingest = Ingest(self._client, batch_id, fields["key"],
                            float(fields["expires_at"]), int(fields["ttl"]), skip_invalid)
            try:
                self._read(BatchFile(path, self._client.catalog.models), ingest, progress)
            except BaseException:
                ingest.abort("the submission stopped before every line was read")
                raise
        finally:
            if spooled:
                with contextlib.suppress(OSError):
                    path.unlink()
        ingest.open()
        return self.retrieve(batch_id)

    def _new_record(self, fields: dict[str, str], api_key: str, window_s: int,
                    idempotency_key: str | None) -> tuple[str, bool]:
        """Write a `validating` batch record: (its id, False), or (earlier id, True) when the
        idempotency key is already held by a batch."""
        batch_id, now = js.new_batch_id(), time.time()
        ttl = self._settings.batch_ttl_s + window_s
        fields.update(id=batch_id, key=hashlib.sha256(api_key.encode()).hexdigest(),
                      tenant=self._tenant_of(api_key) or "",
                      created_at=repr(now), expires_at=repr(now + window_s))
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.batch(batch_id), mapping=fields)  # type: ignore[arg-type]
            pipe.expire(keys.batch(batch_id), ttl)
            pipe.zadd(keys.batch_index(), {batch_id: now})
            pipe.zremrangebyscore(keys.batch_index(), 0, now - ttl)
            pipe.execute()
        fields["ttl"] = str(ttl)
        if idempotency_key is not None:
            earlier = self._claim(batch_id, fields["key"], idempotency_key)
            if earlier is not None:
                return earlier, True
        return batch_id, False

    def _claim(self, batch_id: str, key_hash: str, idempotency_key: str) -> str | None:
        """The batch already holding this key, or None once this batch holds it."""
        claim = keys.idempotency("batch", key_hash, idempotency_key)
        if self._redis.set(claim, batch_id, nx=True, ex=self._settings.idempotency_ttl_s):
            return None
        earlier = self._redis.get(claim)
        if earlier is None:  # released in between: take it after all
            self._redis.set(claim, batch_id, ex=self._settings.idempotency_ttl_s)
            return None
        # Our record was written first, so a reader of the claim always finds a batch.
        self._redis.delete(keys.batch(batch_id))
        self._redis.zrem(keys.batch_index(), batch_id)
        return str(earlier)

    @staticmethod
    def _read(reader: BatchFile, ingest: Ingest, progress: ReadProgress | None) -> None:
        size = reader.path.stat().st_size
        for item in reader:
            if isinstance(item, BadLine):
                ingest.refuse(item)
            else:
                ingest.accept(item)
            if progress is not None and reader.lines % _READ_CHUNK == 0:
                progress(reader.bytes_read, size)
        if progress is not None:
            progress(reader.bytes_read, size)

    def _tenant_of(self, api_key: str) -> str | None:
        from broker.access import tenant_of_key  # access builds on the client module

        return tenant_of_key(self._client, api_key)

    @staticmethod
    def _owned(fields: Mapping[str, str], key_hash: str, tenant: str | None) -> bool:
        """A batch belongs to its tenant, whichever of the tenant's keys asks (a rotated key
        keeps its batches); one made with a key of no tenant, to that key alone."""
        if fields.get("tenant"):
            return tenant is not None and hmac.compare_digest(fields["tenant"], tenant)
        return hmac.compare_digest(fields.get("key", ""), key_hash)

    def _load(self, batch_id: str, api_key: str | None) -> dict[str, str]:
        fields: dict[str, str] = self._redis.hgetall(keys.batch(batch_id))  # type: ignore[assignment]
        if fields and api_key is not None and not self._owned(
                fields, hashlib.sha256(api_key.encode()).hexdigest(), self._tenant_of(api_key)):
            fields = {}
        if not fields:
            raise JobNotFound(f"no batch {batch_id}")  # another tenant's batch: not found
        return fields

    def retrieve(self, batch_id: str, api_key: str | None = None) -> Batch:
        """The batch now; with `api_key`, only if it belongs to that key's tenant."""
        return decode_batch(self._load(batch_id, api_key))

    def wait(self, batch_id: str, *, timeout: float | None = None, poll_s: float = 0.5,
             progress: Callable[[Batch], None] | None = None,
             api_key: str | None = None) -> Batch:
        """Poll until the batch ends; `progress` sees every reading; TimeoutError on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = self.retrieve(batch_id, api_key)
            if progress is not None:
                progress(batch)
            if batch.status.terminal:
                return batch
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"batch {batch_id} did not end within {timeout} s")
            time.sleep(poll_s)

    def results(self, batch_id: str, api_key: str | None = None) -> Iterator[ResultLine]:
        """Output and error lines of every ended job, in input order, then refused lines."""
        total = int(self._load(batch_id, api_key).get("total", 0))
        for start in range(0, total, _READ_CHUNK):
            stop = min(start + _READ_CHUNK, total)
            job_ids = [js.batch_job_id(batch_id, index) for index in range(start, stop)]
            custom_ids = self._redis.lrange(keys.batch_custom_ids(batch_id), start, stop - 1)
            found = read_results(self._redis, job_ids)
            with self._redis.pipeline(transaction=False) as pipe:
                for job_id, result in zip(job_ids, found, strict=True):
                    if result is None:
                        pipe.exists(js.job_key(job_id))
                alive = iter(pipe.execute())
            for position, (job_id, result) in enumerate(zip(job_ids, found, strict=True)):
                custom_id = str(custom_ids[position]) if position < len(custom_ids) else None
                if result is None and not next(alive):
                    result = aged_out(job_id)  # retention removed it: it reads as expired
                if result is not None:
                    yield result_line(custom_id, result)
        invalid_key = keys.batch_invalid(batch_id)
        for start in range(0, int(self._redis.llen(invalid_key)), _READ_CHUNK):
            for raw in self._redis.lrange(invalid_key, start, start + _READ_CHUNK - 1):
                yield bad_line(BatchLineError.model_validate_json(raw))

    def cancel(self, batch_id: str, api_key: str | None = None) -> Batch:
        """Stop a batch: jobs not yet calling upstream end `cancelled`; calls under way finish
        and are billed."""
        bkey = keys.batch(batch_id)
        self._load(batch_id, api_key)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(bkey)  # type: ignore[no-untyped-call]  # the ledger may end it
                    status = BatchStatus(str(pipe.hget(bkey, "status")))
                    if status.terminal or status is BatchStatus.CANCELLING:
                        pipe.reset()
                        return self.retrieve(batch_id)
                    total = int(pipe.hget(bkey, "total") or 0)
                    pipe.multi()
                    pipe.hset(bkey, mapping={"status": BatchStatus.CANCELLING.value,
                                             "cancelling_at": repr(time.time())})
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        cancellations.announce(self._redis, batch_id=batch_id,
                               keep_s=self._settings.model_task_time_limit_s)
        self._flag_cancelled(batch_id, total)
        return self.retrieve(batch_id)

    def _flag_cancelled(self, batch_id: str, total: int) -> None:
        # While validating nothing was sent: the submitter sees `cancelling` and cleans up.
        for start in range(0, total, _READ_CHUNK):
            with self._redis.pipeline(transaction=False) as pipe:
                for index in range(start, min(start + _READ_CHUNK, total)):
                    key = js.job_key(js.batch_job_id(batch_id, index))
                    pipe.hset(key, js.F_CANCEL, "1")
                    # A hash already aged out must not come back without a TTL.
                    pipe.expire(key, self._settings.payload_ttl_s, nx=True)
                pipe.execute()

    def list(self, *, api_key: str | None = None, limit: int = 20) -> list[Batch]:
        """The newest batches first; with `api_key`, only those of that key's tenant."""
        key_hash = hashlib.sha256(api_key.encode()).hexdigest() if api_key else None
        tenant = self._tenant_of(api_key) if api_key else None
        found: list[Batch] = []
        start = 0
        while len(found) < limit:
            ids = [str(batch_id) for batch_id in
                   self._redis.zrevrange(keys.batch_index(), start, start + 4 * limit - 1)]
            if not ids:
                break
            start += len(ids)
            with self._redis.pipeline(transaction=False) as pipe:
                for batch_id in ids:
                    pipe.hgetall(keys.batch(batch_id))
                records = pipe.execute()
            stale = [bid for bid, fields in zip(ids, records, strict=True) if not fields]
            if stale:
                self._redis.zrem(keys.batch_index(), *stale)
            found += [decode_batch(fields) for fields in records if fields and (
                key_hash is None or self._owned(fields, key_hash, tenant))]
        return found[:limit]

