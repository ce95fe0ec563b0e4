"""The result backend that keeps the usage ledger: a job's result and its usage land together.

One Lua script stores the terminal result and increments the day and hour usage
aggregates (and, for a batch job, its batch's counters and usage) atomically, and does
nothing when a result already exists for that id: a job redelivered after a worker died
can finish twice, but is stored and billed once.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis

from broker import jobstore as js
from broker import keys
from broker.catalog import BrokerSettings
from broker.lua_source import lua_source
from broker.schemas import ErrorInfo, JobResult, JobStatus

_FINISH_SOURCE = lua_source("finish_job.lua")
_DAY_S = 86400


def cost_usd(nanousd: int) -> float:
    """Nano-USD as dollars."""
    return nanousd / 1e9


class ScriptCaller(Protocol):
    """Something that runs a registered script call (a coalescing batcher)."""

    async def call(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """Run `script` with these keys and args; its reply."""


class ResultBackend:
    """Stores job results with their usage, exactly once per job id."""

    def __init__(self, settings: BrokerSettings) -> None:
        self._result_ttl = settings.result_ttl_s
        self._payload_ttl = settings.payload_ttl_s
        self._usage_ttl = settings.usage_retention_days * _DAY_S
        self._async_script: Any = None

    def _keys_and_args(self, result: JobResult, cost_nanousd: int) -> tuple[list[str], list[Any]]:
        day, hour = keys.day_and_hour(result.finished_at)
        tenant = result.tenant or "-"
        deployment = result.route.deployment
        # Billed: a job that called upstream (a job cancelled or expired at a deployment
        # before its call is not a request); only jobs with a known tenant.
        billable = (result.usage.total_tokens > 0 or bool(result.route.attempts)) and bool(
            result.tenant)
        served_by = result.route.model or result.model
        prefix = keys.usage_field_prefix(tenant, served_by, deployment or "-") if billable else ""
        usage = result.usage
        script_keys = [keys.result(result.id), keys.job(result.id), keys.usage_day(day),
                       keys.usage_hour(hour), keys.status_counts(day), keys.done(result.id)]
        args: list[Any] = [
            "", self._result_ttl, result.status.value, prefix, usage.prompt_tokens,
            usage.completion_tokens, cost_nanousd, 1 if usage.estimated else 0,
            self._usage_ttl, self._payload_ttl, tenant, repr(result.finished_at)]
        # A batch job's id names its batch, so every way a job can end (even with its
        # payload gone) counts into the batch in this same step.
        in_batch = js.batch_of(result.id)
        if in_batch is not None:
            batch_id = in_batch[0]
            result = result.model_copy(update={"batch_id": batch_id})
            script_keys += [keys.batch(batch_id), keys.batch_usage_day(day),
                            keys.batch_usage_hour(hour)]
            args.append(keys.batch_usage_field_prefix(batch_id, tenant, served_by,
                                                      deployment or "-") if billable else "")
        args[0] = result.model_dump_json()
        return script_keys, args

    def _script(self, client: aioredis.Redis) -> Any:
        if self._async_script is None:
            self._async_script = client.register_script(_FINISH_SOURCE)
        return self._async_script

    async def finish(self, client: aioredis.Redis, result: JobResult, cost_nanousd: int,
                     batcher: ScriptCaller | None = None) -> bool:
        """Store one result and its usage; False if the job had already finished.

        With a batcher, the call goes out together with the other jobs' script calls.
        """
        script_keys, args = self._keys_and_args(result, cost_nanousd)
        script = self._script(client)
        if batcher is not None:
            return bool(await batcher.call(script, script_keys, args))
        return bool(await script(keys=script_keys, args=args))

    async def finish_many(
        self, client: aioredis.Redis, results: list[tuple[JobResult, int]]
    ) -> list[bool]:
        """Store several results in one round trip; one flag per result."""
        if not results:
            return []
        script = self._script(client)
        async with client.pipeline(transaction=False) as pipe:
            for result, cost in results:
                script_keys, args = self._keys_and_args(result, cost)
                await script(keys=script_keys, args=args, client=pipe)
            replies = await pipe.execute()
        return [bool(reply) for reply in replies]


def read_result(client: redis.Redis, job_id: str) -> JobResult | None:
    """The stored result of a job, or None while it runs (or after its TTL)."""
    raw = client.get(keys.result(job_id))
    return JobResult.model_validate_json(raw) if raw else None


def read_results(client: redis.Redis, job_ids: list[str]) -> list[JobResult | None]:
    """Results of many jobs in one round trip, in the order asked."""
    if not job_ids:
        return []
    raws = client.mget([keys.result(job_id) for job_id in job_ids])
    return [JobResult.model_validate_json(raw) if raw else None for raw in raws]


def aged_out(job_id: str) -> JobResult:
    """What a job reads as once retention removed both its result and its payload."""
    made = js.id_time(job_id)
    in_batch = js.batch_of(job_id)
    stamp = time.time()
    return JobResult(
        id=job_id, status=JobStatus.EXPIRED, model="-", kind="chat",
        error=ErrorInfo(code="result_expired",
                        message="the job's result is past its retention (result_ttl_s); "
                                "its usage stays in the ledger"),
        batch_id=in_batch[0] if in_batch else None, created_at=made or stamp,
        finished_at=stamp)

