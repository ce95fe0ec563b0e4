"""The producer client: submit jobs, then wait on, poll or cancel their handles."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from kombu.exceptions import OperationalError
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticSerializationError

from broker import cancellations, keys
from broker import jobstore as js
from broker.backend import aged_out, read_result, read_results
from broker.batches import Batches
from broker.catalog import Catalog, load_catalog
from broker.celery_app import create_app
from broker.errors import JobNotFound, ValidationError
from broker.memory_guard import MemoryGuard
from broker.queues import LANE_PRIORITY, POLICY_QUEUE, POLICY_TASK
from broker.schemas import JobRequest, JobResult, JobStatus, Lane

if TYPE_CHECKING:
    from broker.access import TenantView

ProgressCallback = Callable[[int], None]


def _validate(request: JobRequest | dict[str, Any], position: int | None = None) -> JobRequest:
    where = f"job {position}: " if position is not None else ""
    if isinstance(request, JobRequest):
        # A model built without validation (model_construct, model_copy) may still hold
        # what cannot be stored or sent; check it now, before any job of the call is queued.
        try:
            JobRequest.model_validate({**request.model_dump(exclude_none=True),
                                       "api_key": request.api_key.get_secret_value()})
            request.model_dump_json()
        except PydanticValidationError as exc:
            raise ValidationError(f"{where}{_problems(exc)}") from None
        except (PydanticSerializationError, UnicodeEncodeError) as exc:
            raise ValidationError(f"{where}cannot be serialised: {exc}") from None
        return request
    try:
        return JobRequest.model_validate(request)
    except PydanticValidationError as exc:
        raise ValidationError(f"{where}{_problems(exc)}") from None


def _problems(exc: PydanticValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'job'}: {err['msg']}"
                     for err in exc.errors())


def _out_of_memory(exc: BaseException) -> bool:
    """Whether a write failed because Redis is full (kombu wraps redis-py's error)."""
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or isinstance(
        exc.__cause__ or exc.__context__, redis.exceptions.OutOfMemoryError)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True, slots=True)
class JobHandle:
    """A submitted job: wait for it (`result()` or `await`), poll it, or cancel it."""

    id: str
    client: Client

    def status(self) -> JobStatus:
        """Where the job is now."""
        return self.client.status(self.id)

    def result(self, timeout: float | None = None) -> JobResult:
        """Block until the job ends; TimeoutError after `timeout` seconds."""
        return self.client.wait(self.id, timeout)

    def cancel(self) -> bool:
        """Ask the job to stop before it calls upstream; False if it already ended."""
        return self.client.cancel(self.id)

    async def wait(self, timeout: float | None = None) -> JobResult:
        """Wait without blocking the event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        checked = time.monotonic()
        while True:
            found = await asyncio.to_thread(self.client.peek, self.id)
            if found is not None:
                return found
            if time.monotonic() - checked >= 1.0:  # aged out: answer instead of waiting
                checked = time.monotonic()
                gone = await asyncio.to_thread(self.client._gone, [self.id])
                if gone:
                    return gone[self.id]
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} did not finish within {timeout} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    def __await__(self) -> Any:
        return self.wait().__await__()


class Client:
    """Submits jobs to the broker and reads their results; built from the catalog."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog or load_catalog()
        self.settings = self.catalog.broker
        self.redis: redis.Redis = redis.Redis.from_url(
            self.settings.redis_url, decode_responses=True, socket_keepalive=True,
            health_check_interval=30)
        self._app = create_app(self.catalog, with_tasks=False)
        self.batches = Batches(self)
        self._memory = MemoryGuard(self.redis, self.settings.memory_high_water)

    def close(self) -> None:
        """Release connections."""
        self.redis.close()
        self._app.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, request: JobRequest | dict[str, Any] | None = None,
               **fields: Any) -> JobHandle:
        """Validate and enqueue one job."""
        return self.submit_many([request if request is not None else fields])[0]

    def submit_many(self, requests: Iterable[JobRequest | dict[str, Any]], *,
                    priority: Lane | None = None,
                    progress: ProgressCallback | None = None) -> list[JobHandle]:
        """Validate every job first, then enqueue them in batches; returns one handle each.

        A job with an `idempotency_key` already used by the same tenant key within
        `idempotency_ttl_s` is not enqueued again: its handle is the earlier job's.
        """
        validated = [_validate(request, i) for i, request in enumerate(requests)]
        if priority is not None:
            validated = [r.model_copy(update={"priority": priority}) for r in validated]
        now = time.time()
        ids = [js.new_job_id() for _ in validated]
        key_hashes: dict[str, str] = {}
        for start in range(0, len(ids), self.settings.batch_size):
            chunk = list(zip(ids[start:start + self.settings.batch_size],
                             validated[start:start + self.settings.batch_size], strict=True))
            digests = [self._key_hash(request, key_hashes) for _, request in chunk]
            self._memory.check()
            taken = self._admit(chunk, digests, now)
            for position, (job_id, _request) in enumerate(chunk):
                ids[start + position] = taken.get(job_id, job_id)
            if progress is not None:
                progress(len(chunk))
        return [JobHandle(job_id, self) for job_id in ids]

    @staticmethod
    def _key_hash(request: JobRequest, cache: dict[str, str]) -> str:
        raw_key = request.api_key.get_secret_value()
        digest = cache.get(raw_key)
        if digest is None:
            digest = cache[raw_key] = hashlib.sha256(raw_key.encode()).hexdigest()
        return digest

    def _store(self, chunk: list[tuple[str, JobRequest]], digests: list[str],
               now: float) -> dict[str, str]:
        """Store payloads; {new id: earlier id} for jobs whose idempotency key was taken.

        The payload is written before the key is claimed (SET NX), so whoever reads a
        claimed key always finds the job behind it; a loser deletes its own payload.
        """
        claims: list[tuple[int, str, str]] = []
        with self.redis.pipeline(transaction=False) as pipe:
            for (job_id, request), digest in zip(chunk, digests, strict=True):
                key = js.job_key(job_id)
                pipe.hset(key, mapping=js.encode_new(request, digest, now))  # type: ignore[arg-type]
                pipe.expire(key, self.settings.payload_ttl_s)
                if request.idempotency_key is not None:
                    claim = keys.idempotency("job", digest, request.idempotency_key)
                    claims.append((len(pipe), job_id, claim))
                    pipe.set(claim, job_id, nx=True, ex=self.settings.idempotency_ttl_s)
            replies = pipe.execute()
        lost = [(job_id, claim) for position, job_id, claim in claims if not replies[position]]
        if not lost:
            return {}
        earlier = self.redis.mget([claim for _, claim in lost])
        # A claim that expired between our SET and GET leaves our own job standing.
        taken = {job_id: str(found) for (job_id, _), found in zip(lost, earlier, strict=True)
                 if found}
        if taken:
            self.redis.delete(*(js.job_key(job_id) for job_id in taken))
        return taken

    def _admit(self, chunk: list[tuple[str, JobRequest]], digests: list[str],
               now: float) -> dict[str, str]:
        """Store and send one chunk; on a full Redis remove what was written, raise BrokerFull."""
        try:
            taken = self._store(chunk, digests, now)
            self._send_policy([item for item in chunk if item[0] not in taken])
        except (redis.exceptions.OutOfMemoryError, OperationalError) as exc:
            if not _out_of_memory(exc):
                raise
            # DEL is allowed under noeviction: nothing of a refused chunk stays behind.
            self.redis.delete(*(js.job_key(job_id) for job_id, _ in chunk))
            claims = [keys.idempotency("job", digest, request.idempotency_key)
                      for (_, request), digest in zip(chunk, digests, strict=True)
                      if request.idempotency_key is not None]
            for claim, owner in zip(claims, self.redis.mget(claims) if claims else [],
                                    strict=True):
                if owner in {job_id for job_id, _ in chunk}:
                    self.redis.delete(claim)
            raise self._memory.refused() from exc
        return taken

    def _send_policy(self, chunk: list[tuple[str, JobRequest]]) -> None:
        by_lane: dict[str, list[str]] = {}
        for job_id, request in chunk:
            by_lane.setdefault(request.priority, []).append(job_id)
        for lane, lane_ids in by_lane.items():
            self.send_ids(lane_ids, lane)

    def send_ids(self, job_ids: list[str], lane: str) -> None:
        """Send stored jobs to the policy queue as one message (keep it to `batch_size`)."""
        if job_ids:
            self._app.send_task(POLICY_TASK, args=[job_ids], queue=POLICY_QUEUE,
                                priority=LANE_PRIORITY[lane])

    def for_tenant(self, api_key: str) -> TenantView:
        """A view limited to the jobs and usage of the key's tenant."""
        from broker.access import TenantView  # access builds on this module

        return TenantView(self, api_key)

    def peek(self, job_id: str) -> JobResult | None:
        """The result if the job has ended, else None (never blocks)."""
        return read_result(self.redis, job_id)

    def status(self, job_id: str) -> JobStatus:
        """Current status of a job; `expired` once retention removed it; else JobNotFound."""
        result = self.peek(job_id)
        if result is not None:
            return result.status
        state, runs = self.redis.hmget(js.job_key(job_id), [js.F_STATE, js.F_RUNS])
        if state is None:
            if self._aged_out(job_id):
                return JobStatus.EXPIRED
            raise JobNotFound(f"no job {job_id}")
        status = JobStatus(str(state))
        return JobStatus.RUNNING if (runs and not status.terminal) else status

    def _aged_out(self, job_id: str) -> bool:
        """True when a job that existed is gone because its result and payload TTLs ran out."""
        in_batch = js.batch_of(job_id)
        if in_batch is not None:
            total = self.redis.hget(keys.batch(in_batch[0]), "total")
            if total is not None:
                return in_batch[1] < int(total)
        made = js.id_time(job_id)
        shortest = min(self.settings.result_ttl_s, self.settings.payload_ttl_s)
        return made is not None and time.time() - made >= shortest

    def _gone(self, job_ids: list[str]) -> dict[str, JobResult]:
        """Results standing in for jobs whose records are all gone (JobNotFound if unknown)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(js.job_key(job_id))
            exists = pipe.execute()
        missing = [job_id for job_id, found in zip(job_ids, exists, strict=True) if not found]
        # The result may have landed after our read of it; read again before judging.
        missing = [job_id for job_id, found in zip(missing, read_results(self.redis, missing),
                                                   strict=True) if found is None]
        unknown = [job_id for job_id in missing if not self._aged_out(job_id)]
        if unknown:
            raise JobNotFound(f"no job {unknown[0]}"
                              + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        return {job_id: aged_out(job_id) for job_id in missing}

    def wait(self, job_id: str, timeout: float | None = None) -> JobResult:
        """Block until the job ends; TimeoutError after `timeout` seconds.

        A job whose result and payload have both aged out answers at once as `expired`
        (error `result_expired`) instead of being waited for forever.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        done_key = keys.done(job_id)
        while True:
            found = self.peek(job_id)
            if found is not None:
                return found
            gone = self._gone([job_id])
            if gone:
                return gone[job_id]
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
            # BLMOVE onto the same list rotates it: every waiter wakes, none consumes.
            self.redis.blmove(done_key, done_key, min(max(remaining, 0.01), 1.0),  # type: ignore[arg-type]
                              "LEFT", "RIGHT")

    def wait_all(self, handles: list[JobHandle], timeout: float | None = None,
                 progress: ProgressCallback | None = None) -> list[JobResult]:
        """Wait for many jobs, polling their results in pipelined batches."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending: dict[str, list[int]] = {}
        for i, handle in enumerate(handles):  # an idempotent duplicate shares its job's id
            pending.setdefault(handle.id, []).append(i)
        results: list[JobResult | None] = [None] * len(handles)
        delay = 0.01
        last_gone_check = time.monotonic()
        while pending:
            for chunk in _chunks(list(pending), 1000):
                found_now: dict[str, JobResult] = {
                    job_id: found for job_id, found in
                    zip(chunk, read_results(self.redis, chunk), strict=True) if found}
                if time.monotonic() - last_gone_check > 2.0:
                    missing = [job_id for job_id in chunk if job_id not in found_now]
                    found_now.update(self._gone(missing))
                for job_id, found in found_now.items():
                    for index in pending.pop(job_id):
                        results[index] = found
                        if progress is not None:
                            progress(1)
            if time.monotonic() - last_gone_check > 2.0:
                last_gone_check = time.monotonic()
            if not pending:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{len(pending)} jobs did not finish within {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        return [r for r in results if r is not None]

    def cancel(self, job_id: str) -> bool:
        """Flag a job as cancelled; it ends `cancelled` unless its upstream call has begun."""
        if self.peek(job_id) is not None:
            return False
        if not self.redis.exists(js.job_key(job_id)):
            raise JobNotFound(f"no job {job_id}")
        self.redis.hset(js.job_key(job_id), js.F_CANCEL, "1")
        cancellations.announce(self.redis, job_ids=(job_id,),
                               keep_s=self.settings.model_task_time_limit_s)
        return True
