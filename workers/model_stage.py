"""Model stage: run a batch of jobs against one deployment, many calls in flight at once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from broker import jobstore as js
from broker.catalog import Deployment
from broker.errors import InternalError, JobCancelled, JobExpired, TimeLimitExceeded
from broker.jobstore import JobRecord
from broker.schemas import ErrorInfo, JobResult, JobStatus, Route, Timings
from workers.outcomes import cost_of, ended_early, estimate_usage, missing_payload
from workers.providers.base import ProviderAdapter, get_adapter
from workers.retry import CallOutcome, call_upstream
from workers.runtime import Runtime


async def _claim(rt: Runtime, job_ids: list[str]) -> list[tuple[JobRecord | None, int]]:
    """Load a batch and count one more run of each job, in one round trip."""
    async with rt.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            key = js.job_key(job_id)
            pipe.hmget(key, js.LOAD_FIELDS)
            pipe.hincrby(key, js.F_RUNS, 1)
        rows = await pipe.execute()
    return [(js.decode(job_id, rows[2 * i]), int(rows[2 * i + 1]))
            for i, job_id in enumerate(job_ids)]


def _precheck(rt: Runtime, record: JobRecord, runs: int) -> JobResult | None:
    if record.cancel_requested:
        return ended_early(record, JobStatus.CANCELLED, JobCancelled("cancelled by the caller"))
    if record.expired():
        return ended_early(record, JobStatus.EXPIRED,
                           JobExpired("the deadline passed before the job could start"))
    if runs > rt.settings.max_redeliveries + 1:
        return ended_early(record, JobStatus.FAILED, InternalError(
            f"the job was delivered {runs} times and its worker was lost each time"))
    return None


def _result_of(rt: Runtime, record: JobRecord, deployment: Deployment,
               outcome: CallOutcome) -> tuple[JobResult, int]:
    now = time.time()
    total_ms = (now - record.submitted_at) * 1000
    policy_ms = record.policy_ms or 0.0
    timings = Timings(policy=policy_ms, upstream=outcome.upstream_ms, total=total_ms,
                      queued=max(total_ms - policy_ms - outcome.upstream_ms, 0.0))
    route = Route(deployment=deployment.name, attempts=outcome.attempts)
    body = record.body
    if outcome.reply is not None:
        response = outcome.reply.response
        usage = outcome.reply.usage or estimate_usage(record, response, rt.catalog)
        cost = cost_of(usage, rt.catalog, deployment.name)
        return JobResult(
            id=record.id, status=JobStatus.SUCCEEDED, tenant=record.tenant, model=body.model,
            kind=body.kind, response=response, usage=usage, cost_usd=cost / 1e9, route=route,
            timings=timings, metadata=record.metadata, created_at=record.submitted_at,
            finished_at=now, policy=record.policy,
        ), cost
    error = outcome.error or InternalError("no reply and no error from upstream")
    return JobResult(
        id=record.id, status=JobStatus.FAILED, tenant=record.tenant, model=body.model,
        kind=body.kind, route=route, timings=timings, metadata=record.metadata,
        error=ErrorInfo(code=error.code, message=error.message, retryable=error.retryable),
        created_at=record.submitted_at, finished_at=now, policy=record.policy,
    ), 0


async def _run_job(rt: Runtime, deployment: Deployment, adapter: ProviderAdapter,
                   job_id: str, record: JobRecord | None, runs: int) -> str:
    if record is None:
        await rt.backend.finish(rt.redis, missing_payload(job_id), 0)
        return "expired"
    if record.state.terminal:
        return "skipped"
    record.deployment = deployment.name
    early = _precheck(rt, record, runs)
    if early is not None:
        await rt.backend.finish(rt.redis, early, 0)
        return early.status.value
    async with rt.slots(deployment.name):
        outcome = await call_upstream(rt.sender, adapter, deployment, record.body,
                                      deployment.api_key(), rt.settings.retry, rt.rng)
    result, cost = _result_of(rt, record, deployment, outcome)
    stored = await rt.backend.finish(rt.redis, result, cost)
    return result.status.value if stored else "duplicate"


async def _end_overdue(rt: Runtime, records: list[JobRecord]) -> None:
    limit = rt.settings.model_task_time_limit_s
    error = TimeLimitExceeded(f"the job was still running after the {limit} s task time limit")
    ended = [(ended_early(record, JobStatus.FAILED, error), 0) for record in records]
    await rt.backend.finish_many(rt.redis, ended)


async def run_batch(rt: Runtime, deployment_name: str, job_ids: list[str]) -> dict[str, int]:
    """Run every job of a batch on one deployment; returns counts by outcome.

    The batch is bounded by the task time limit here, on the loop: Celery's thread pool
    does not enforce time limits, and a job still running past it must end `failed`
    rather than outlive the visibility timeout and be delivered twice.
    """
    deployment = rt.catalog.deployments[deployment_name]
    adapter = get_adapter(deployment.provider)
    claimed = await _claim(rt, job_ids)
    tasks = {
        asyncio.ensure_future(_run_job(rt, deployment, adapter, job_id, record, runs)): record
        for job_id, (record, runs) in zip(job_ids, claimed, strict=True)
    }
    done, pending = await asyncio.wait(tasks, timeout=rt.settings.model_task_time_limit_s)
    for task in pending:
        task.cancel()
    overdue = [record for task in pending if (record := tasks[task]) is not None]
    if overdue:
        await _end_overdue(rt, overdue)
    outcomes = Counter(task.result() for task in done)
    if overdue:
        outcomes["time_limit"] = len(overdue)
    return dict(outcomes)
