"""Open upstream calls: every call the provider may have served is billed or counted lost.

Before a model worker sends a request, it records the call in the job's hash (an attempt
id, its owner process, when it expires, and estimated tokens and cost). The record goes
when the call fails (nothing was served), and settles with the job's result in
finish_job.lua (billed when the result carries tokens). A call that can no longer settle
— its worker died mid-call, its job was delivered again with the call still open, its
job ended another way, or its result came second to another run's — is counted per
tenant, model and deployment as lost in flight (`lost_*` usage metrics, estimates),
apart from billed usage. Budgets are never charged for it: the job's reservation settles
once, with the usage of the result that was stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import redis.asyncio as aioredis

from broker import keys, liveness
from broker.catalog import BrokerSettings, Deployment
from broker.jobstore import JobRecord
from broker.lua_source import lua_source
from workers.script_batcher import ScriptBatcher

_SCRIPT = lua_source("attempt.lua")
_DAY_S = 86400
_SWEEP_EVERY_S = 5.0
_SWEEP_BATCH = 500

log = logging.getLogger("aibroker.attempts")


def estimate(record: JobRecord, deployment: Deployment, default_max_tokens: int
             ) -> tuple[int, int, int]:
    """Prompt tokens, completion tokens and nano-USD a call of this job may cost."""
    body = record.body
    prompt = record.input_tokens or 0
    completion = 0 if body.kind == "embeddings" else (body.output_cap or default_max_tokens)
    return prompt, completion, deployment.price.cost_nanousd(prompt, completion)


class OpenAttempts:
    """Records of the upstream calls in progress, in the jobs' hashes."""

    def __init__(self, client: aioredis.Redis, batcher: ScriptBatcher,
                 settings: BrokerSettings) -> None:
        self.client = client
        self.settings = settings
        self._batcher = batcher
        self._script: Any = client.register_script(_SCRIPT)
        self._usage_ttl = settings.usage_retention_days * _DAY_S
        self._next_sweep = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    def _keys(self, job_id: str, now: float) -> list[str]:
        day, hour = keys.day_and_hour(now)
        return [keys.job(job_id), keys.open_attempts(), keys.usage_day(day),
                keys.usage_hour(hour), keys.workers_alive()]

    async def open(self, record: JobRecord, deployment: Deployment) -> str:
        """Record a call about to be sent; returns its attempt id."""
        now = time.time()
        attempt_id = uuid.uuid4().hex
        ttl_s = deployment.timeout_s + self.settings.capacity.lease_margin_s
        expires_ms = int((now + ttl_s) * 1000)
        prompt, completion, cost = estimate(record, deployment,
                                            self.settings.capacity.default_max_tokens)
        served_by = record.route.model or record.body.model
        prefix = keys.usage_field_prefix(record.tenant or "-", served_by, deployment.name)
        entry = "\t".join((attempt_id, liveness.worker_id(), str(expires_ms), str(prompt),
                           str(completion), str(cost))) + "\t" + prefix
        counted = await self._batcher.call(
            self._script, self._keys(record.id, now),
            ["open", record.id, attempt_id, int(now * 1000), self._usage_ttl, entry,
             expires_ms])
        if counted:
            log.warning("job %s: the call of an earlier delivery never settled; counted as "
                        "lost in flight", record.id)
        return attempt_id

    async def close(self, job_id: str, attempt_id: str) -> None:
        """Forget a call that failed: the provider served nothing for it."""
        now = time.time()
        await self._batcher.call(self._script, self._keys(job_id, now),
                                 ["close", job_id, attempt_id, int(now * 1000),
                                  self._usage_ttl])

    def forget_soon(self, job_id: str) -> None:
        """Drop a settled call's index entry, in the background (the next sweep would)."""
        now = time.time()
        self._spawn(self._batcher.call(self._script, self._keys(job_id, now),
                                       ["forget", job_id, "", int(now * 1000),
                                        self._usage_ttl]))

    def _spawn(self, call: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(call)
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("an index entry stays for the sweep: %s", task.exception())

    async def sweep(self, now: float | None = None) -> int:
        """Count expired calls whose owner is dead (or long overdue) as lost; how many."""
        now = time.time() if now is None else now
        now_ms = int(now * 1000)
        due = await self.client.zrangebyscore(keys.open_attempts(), "-inf", now_ms,
                                              start=0, num=_SWEEP_BATCH)
        if not due:
            return 0
        liveness_ms = int(liveness.HEARTBEAT_TTL_S * 1000)
        overdue_ms = self.settings.model_task_time_limit_s * 1000
        async with self.client.pipeline(transaction=False) as pipe:
            for job_id in due:
                await self._script(keys=self._keys(str(job_id), now),
                                   args=["expire", str(job_id), "", now_ms, self._usage_ttl,
                                         liveness_ms, overdue_ms], client=pipe)
            counted = sum(int(n) for n in await pipe.execute())
        if counted:
            log.warning("%d upstream calls never settled (their worker was lost); counted "
                        "as lost in flight", counted)
        return counted

    async def maybe_sweep(self) -> None:
        """Sweep at most every few seconds per process; a failed sweep waits for the next."""
        moment = time.monotonic()
        if moment < self._next_sweep:
            return
        self._next_sweep = moment + _SWEEP_EVERY_S
        try:
            await self.sweep()
        except Exception as exc:  # a backstop: a later sweep counts what this one missed
            log.warning("could not sweep open upstream calls: %s", exc)

