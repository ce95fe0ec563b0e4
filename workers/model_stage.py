"""Model stage: run a batch of jobs against one deployment, many calls in flight at once.

Each attempt holds a place in the process's lane-ordered gate and a lease on the
deployment's global capacity (concurrency, RPM, TPM) for exactly the length of the call.
A job that cannot be served here (retries exhausted, circuit open) goes back to the
routing stage for another deployment or a fallback model; a job that waited too long
for capacity goes back to its queue. Our own limits never fail a job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from broker import jobstore as js
from broker.cancellations import is_cancelled
from broker.catalog import Deployment
from broker.errors import (
    BrokerError,
    InternalError,
    InvalidJob,
    JobCancelled,
    JobExpired,
    RateLimited,
    TimeLimitExceeded,
    UpstreamError,
)
from broker.jobstore import JobRecord
from broker.schemas import ErrorInfo, JobStatus
from workers.capacity import WAIT_UNTIL, CapacityWaitExceeded, DeadlinePassed, Lease, Scope
from workers.finishing import finish, finish_many
from workers.model_results import failed_result, succeeded_result
from workers.outcomes import ended_early, estimate_usage, missing_payload
from workers.providers.base import HttpRequest, ProviderAdapter, get_adapter
from workers.retry import AttemptResult, attempt_once, backoff_delay
from workers.runtime import Runtime

log = logging.getLogger("aibroker.model")
F_RUNNER = "runner"


@dataclass(slots=True)
class BatchOutcome:
    """Counts by outcome, and the jobs that must travel on."""

    counts: Counter[str] = field(default_factory=Counter)
    reroute: list[str] = field(default_factory=list)
    requeue: list[str] = field(default_factory=list)


# Who runs a job now: a process started anew (a worker really lost) has another identity.
RUNNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
# Count a run only when another process takes the job: a step run again by the same live
# worker after a Redis outage, or its old delivery coming back to it, is no worker loss.
CLAIM_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then
  return tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or '1')
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
return redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
"""


async def _claim(rt: Runtime, job_ids: list[str]) -> list[tuple[JobRecord | None, int]]:
    """Load a batch and count one more run of each job taken by a new worker, in one trip."""
    async with rt.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            key = js.job_key(job_id)
            pipe.hgetall(key)
            pipe.eval(CLAIM_SCRIPT, 1, key, RUNNER, F_RUNNER, js.F_RUNS)
        rows = await pipe.execute()
    return [(js.decode_hash(job_id, rows[2 * i]), int(rows[2 * i + 1]))
            for i, job_id in enumerate(job_ids)]


def _precheck(rt: Runtime, record: JobRecord, runs: int) -> tuple[JobStatus, BrokerError] | None:
    if record.cancel_requested:
        return JobStatus.CANCELLED, JobCancelled("cancelled by the caller")
    if record.expired():
        return JobStatus.EXPIRED, JobExpired("the deadline passed before the job could start")
    if runs > rt.settings.max_redeliveries + 1:
        return JobStatus.FAILED, InternalError(
            f"the job was delivered {runs} times and its worker was lost each time")
    return None


def _token_estimate(rt: Runtime, record: JobRecord) -> int:
    body = record.body
    output = 0 if body.kind == "embeddings" else (
        body.output_cap or rt.settings.capacity.default_max_tokens)
    return (record.input_tokens or 0) + output


def _pressure(rt: Runtime, result: AttemptResult) -> bool:
    if result.error is not None and result.error.code == "upstream_rate_limited":
        return True
    limits = result.rate_limits
    floor = rt.settings.capacity.adaptive.low_remaining_requests
    return bool(limits and limits.remaining_requests is not None
                and limits.remaining_requests <= floor and floor > 0)


async def _may_call(rt: Runtime, deployment: Deployment) -> bool:
    """False while the deployment's circuit is open and someone else holds the probe."""
    state = (await rt.deployment_states()).get(deployment.name)
    if state is None or state.state != "open":
        return True
    cooldown = rt.settings.capacity.health.cooldown_s
    if time.time() * 1000 - state.opened_at_ms < cooldown * 1000:
        return False
    return await rt.capacity.try_probe(deployment.name, cooldown)


class JobStopped(Exception):
    """The job was cancelled, or its deadline passed, while a worker held it."""

    def __init__(self, status: JobStatus, error: BrokerError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


async def _raise_if_stopped(rt: Runtime, record: JobRecord) -> None:
    if is_cancelled(record.id, await rt.cancelled()):
        raise JobStopped(JobStatus.CANCELLED, JobCancelled("cancelled by the caller"))
    if record.expired():
        raise JobStopped(JobStatus.EXPIRED,
                         JobExpired("the deadline passed before the job could start"))


class TenantOverLimit(Exception):
    """The tenant's own limit is reached and its on_limit is `reject`."""


async def _take(rt: Runtime, record: JobRecord, scopes: list[Scope], tokens: int,
                reject: bool) -> list[tuple[Scope, Lease]]:
    """Leases on every scope, in order; what was taken is given back if one fails."""
    held: list[tuple[Scope, Lease]] = []
    try:
        for scope in scopes:
            tenant_scope = not scope.adaptive
            if tenant_scope and reject:
                got = await rt.capacity.try_acquire(scope, tokens)
                if not isinstance(got, Lease):
                    raise TenantOverLimit(scope.name)
                held.append((scope, got))
            else:
                held.append((scope, await rt.capacity.acquire(scope, tokens, record.deadline)))
    except BaseException:
        await _give_back(rt, held)
        raise
    return held


async def _give_back(rt: Runtime, held: list[tuple[Scope, Lease]]) -> None:
    for scope, lease in held:
        await rt.capacity.release(scope, lease, "none", 0, 0.0)


async def _open_attempt(rt: Runtime, record: JobRecord, deployment: Deployment,
                        held: list[tuple[Scope, Lease]]) -> str:
    """Record the call before it is sent, so a call served upstream is never unaccounted."""
    try:
        return await rt.attempts.open(record, deployment)
    except BaseException:
        await _give_back(rt, held)
        raise


def _outcome(rt: Runtime, record: JobRecord, result: AttemptResult) -> tuple[str, int]:
    if result.reply is not None:
        usage = result.reply.usage or estimate_usage(record, result.reply.response, rt.catalog)
        return ("pressure" if _pressure(rt, result) else "ok"), usage.total_tokens
    if result.error is not None and result.error.retryable:
        return ("pressure" if _pressure(rt, result) else "error"), 0
    return "none", 0  # the job's fault (a 400), not the deployment's


async def _one_attempt(rt: Runtime, deployment: Deployment, adapter: ProviderAdapter,
                       record: JobRecord, request: HttpRequest
                       ) -> tuple[AttemptResult, str, list[asyncio.Task[str]]]:
    """Hold a gate place and leases (tenant, then deployment) for exactly one call.

    Returns the result, the circuit state after a failed call, and the releases of a
    successful one still settling: the caller awaits them once the result is stored, so
    both go to Redis in one pipeline.
    """
    scopes = [*rt.tenant_scopes(record, deployment), rt.deployment_scope(deployment)]
    reject = rt.on_limit(record) == "reject"
    gate = rt.gate(deployment.name)
    settling: list[asyncio.Task[str]] = []
    async with gate.hold(record.lane):
        # The wait for a place can be long: a job cancelled or past its deadline meanwhile
        # stops here, before it takes capacity or calls upstream.
        await _raise_if_stopped(rt, record)
        held = await _take(rt, record, scopes, _token_estimate(rt, record), reject)
        attempt_id = await _open_attempt(rt, record, deployment, held)
        result = await _attempt_or_give_back(rt, held, adapter, deployment, record, request)
        if result.reply is None:
            await rt.attempts.close(record.id, attempt_id)
        outcome, actual = _outcome(rt, record, result)
        duration = result.attempt.duration_ms
        state = "closed"
        for scope, lease in held:
            if (scope.adaptive and outcome == "ok" and gate.has_waiters
                    and _at_full_capacity(rt, deployment)
                    and rt.capacity.can_pass_on(scope, lease)):
                # The next call here starts at once, on this lease.
                settling.append(rt.capacity.pass_on(scope, lease, outcome, duration))
            elif result.reply is not None:
                # Queued before the gate opens, so it reaches Redis ahead of the next acquire.
                settling.append(rt.capacity.release_soon(scope, lease, outcome, actual,
                                                         duration))
            else:
                answer = await rt.capacity.release(scope, lease, outcome, actual, duration)
                if scope.adaptive:
                    state = answer
    return result, state, settling


async def _attempt_or_give_back(rt: Runtime, held: list[tuple[Scope, Lease]],
                                adapter: ProviderAdapter, deployment: Deployment,
                                record: JobRecord, request: HttpRequest) -> AttemptResult:
    """One call; the leases go back at once if reading its reply raises."""
    try:
        return await attempt_once(rt.sender, adapter, deployment, record.body, request)
    except BaseException:
        # The call stays open: the job's end counts it lost in flight, as it may be served.
        await _give_back(rt, held)
        raise


async def _after_handoffs() -> None:
    """Let the calls this one's end made room for start before its result is written.

    Calls to one deployment end in waves; each ending wakes the next waiting call, which
    runs only once the loop has worked through the whole wave. Two loop turns put the
    result work after those starts instead of in front of them.
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _at_full_capacity(rt: Runtime, deployment: Deployment) -> bool:
    """No pressure on record: passing leases on must not hold off a shrink (AIMD)."""
    state = rt.cached_deployment_state(deployment.name)
    return state is None or (state.factor >= 1.0 and state.state == "closed")


async def _reroute(rt: Runtime, record: JobRecord, error: ErrorInfo | None) -> str:
    route = record.route
    route.tried = [*route.tried, record.deployment or ""]
    route.last_error = error or route.last_error
    await rt.redis.hset(js.job_key(record.id), mapping={
        js.F_ROUTE: route.model_dump_json(), js.F_DEPLOYMENT: "", js.F_RUNS: 0})
    return "reroute"


async def _call(rt: Runtime, deployment: Deployment, adapter: ProviderAdapter,
                record: JobRecord) -> str:
    try:
        request = adapter.build_request(deployment, record.body, deployment.api_key())
    except UpstreamError as refused:  # e.g. embeddings sent to a chat-only provider
        stored = await finish(rt, failed_result(record, deployment, refused), 0, record)
        return "failed" if stored else "duplicate"
    attempts = record.route.attempts
    retry = rt.settings.retry
    for attempt in range(1, retry.max_attempts + 1):
        if not await _may_call(rt, deployment):
            return await _reroute(rt, record, None)
        result, state, settling = await _one_attempt(rt, deployment, adapter, record, request)
        if result.error is not None and result.error.status is not None:
            result.attempt = result.attempt.model_copy(
                update={"http_status": result.error.status})
        attempts.append(result.attempt)
        if result.reply is not None:
            await _after_handoffs()
            done, cost = succeeded_result(rt, record, deployment, result.reply)
            stored = await finish(rt, done, cost, record)
            rt.attempts.forget_soon(record.id)
            await asyncio.gather(*settling)
            return "succeeded" if stored else "duplicate"
        error = result.error
        assert error is not None
        if not error.retryable:
            stored = await finish(rt, failed_result(record, deployment, error), 0, record)
            return "failed" if stored else "duplicate"
        if state == "open" or attempt == retry.max_attempts:
            break
        await asyncio.sleep(backoff_delay(attempt, error.retry_after, retry, rt.rng))
    return await _reroute(rt, record, _exhausted_error(record, deployment, attempt))


def _exhausted_error(record: JobRecord, deployment: Deployment, tries: int) -> ErrorInfo:
    """What the job's result says if no other deployment serves it after this one."""
    last = record.route.attempts[-1]
    code = last.error_code or "upstream_error"
    what = f"HTTP {last.http_status}" if last.http_status is not None else code
    model = record.route.model or record.body.model
    plural = "attempt" if tries == 1 else "attempts"
    return ErrorInfo(code=code, retryable=True, message=(
        f"{model} failed on {deployment.name} after {tries} {plural}, last {what}"))


async def _run_job(rt: Runtime, deployment: Deployment, adapter: ProviderAdapter,
                   job_id: str, record: JobRecord | None, runs: int) -> str:
    if record is None:
        await finish(rt, missing_payload(job_id), 0)
        return "expired"
    if record.state.terminal:
        return "skipped"
    record.deployment = deployment.name
    early = _precheck(rt, record, runs)
    if early is not None:
        status, exc = early
        await finish(rt, ended_early(record, status, exc), 0, record)
        return status.value
    try:
        return await _call(rt, deployment, adapter, record)
    except JobStopped as stopped:
        await finish(rt, ended_early(record, stopped.status, stopped.error), 0, record)
        return stopped.status.value
    except DeadlinePassed:
        expired = ended_early(record, JobStatus.EXPIRED,
                              JobExpired("the deadline passed while waiting for capacity"))
        await finish(rt, expired, 0, record)
        return "expired"
    except TenantOverLimit as over:
        limited = ended_early(record, JobStatus.REJECTED, RateLimited(
            f"the tenant's limit {over} is reached (on_limit: reject)"))
        await finish(rt, limited, 0, record)
        return "rejected"
    except CapacityWaitExceeded:
        await rt.redis.hset(js.job_key(record.id), js.F_RUNS, 0)
        return "requeue"
    except RedisError:
        # Redis unreachable mid-job: the job runs again from its queue; its result is
        # stored once whatever happens, so a second run changes nothing.
        log.warning("job %s goes back to its queue after a Redis error", record.id)
        return "requeue"


async def _run_alone(rt: Runtime, deployment: Deployment, adapter: ProviderAdapter,
                     job_id: str, record: JobRecord | None, runs: int) -> str:
    """_run_job, or the job failed alone when building its request or reading its reply raises."""
    try:
        return await _run_job(rt, deployment, adapter, job_id, record, runs)
    except RedisError:
        raise  # an outage: the whole step runs again (tasks.through_outages)
    except Exception as exc:
        if record is None:
            raise
        # One job the stage cannot process must not strand the rest of its message.
        log.warning("job %s failed alone in the model stage: %s", job_id, type(exc).__name__)
        error = InvalidJob(f"the model stage could not process the job: "
                           f"{type(exc).__name__}: {exc}"[:300])
        stored = await finish(rt, ended_early(record, JobStatus.FAILED, error), 0, record)
        return "failed" if stored else "duplicate"


async def _end_overdue(rt: Runtime, records: list[JobRecord]) -> None:
    limit = rt.settings.model_task_time_limit_s
    error = TimeLimitExceeded(f"the job was still running after the {limit} s task time limit")
    await finish_many(rt, [(ended_early(record, JobStatus.FAILED, error), 0, record)
                           for record in records])


async def run_batch(rt: Runtime, deployment_name: str, job_ids: list[str]) -> BatchOutcome:
    """Run every job of a batch on one deployment.

    The batch is bounded by the task time limit here, on the loop: Celery's thread pool
    does not enforce time limits, and a job still running past it must end `failed`
    rather than outlive the visibility timeout and be delivered twice.
    """
    deployment = rt.catalog.deployments[deployment_name]
    adapter = get_adapter(deployment.provider)
    limit = rt.settings.model_task_time_limit_s
    # Leave room for the last call and its retries before the time limit ends the batch.
    WAIT_UNTIL.set(time.monotonic() + max(limit - 2 * deployment.timeout_s, limit * 0.25))
    claimed = await _claim(rt, job_ids)
    await rt.attempts.maybe_sweep()
    tasks = {
        asyncio.ensure_future(_run_alone(rt, deployment, adapter, job_id, record, runs)): job_id
        for job_id, (record, runs) in zip(job_ids, claimed, strict=True)
    }
    records = {job_id: record for job_id, (record, _) in zip(job_ids, claimed, strict=True)}
    done, pending = await asyncio.wait(tasks, timeout=rt.settings.model_task_time_limit_s)
    for task in pending:
        task.cancel()
    outcome = BatchOutcome()
    overdue = [record for task in pending if (record := records[tasks[task]]) is not None]
    if overdue:
        await _end_overdue(rt, overdue)
        outcome.counts["time_limit"] = len(overdue)
    for task in done:
        result = task.result()
        outcome.counts[result] += 1
        if result == "reroute":
            outcome.reroute.append(tasks[task])
        elif result == "requeue":
            outcome.requeue.append(tasks[task])
    return outcome
