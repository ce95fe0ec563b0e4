"""Building terminal JobResults from what a stage learned about a job."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from broker.catalog import Catalog
from broker.errors import BrokerError, InternalError
from broker.jobstore import JobRecord
from broker.schemas import ErrorInfo, JobResult, JobStatus, Route, Timings, Usage
from broker.tokens import count_text, encoding_name_for_model
from workers.finishing import finish_many
from workers.store import load_records

if TYPE_CHECKING:
    from workers.runtime import Runtime


def _kind(record: JobRecord) -> Any:
    return "chat" if '"messages"' in record.body_json else "embeddings"


def _model(record: JobRecord) -> str:
    try:
        return record.body.model
    except ValueError:
        return "-"


def route_and_timings(record: JobRecord, now: float, policy_ms: float = 0.0,
                      deployment: str | None = None) -> tuple[Route, Timings]:
    """The route a job took so far and where its time went, from its recorded attempts."""
    route = record.route
    attempts = route.attempts
    upstream_ms = sum(a.duration_ms for a in attempts)
    total_ms = (now - record.submitted_at) * 1000
    policy = policy_ms or record.policy_ms or 0.0
    timings = Timings(policy=policy, upstream=upstream_ms, total=total_ms,
                      queued=max(total_ms - policy - upstream_ms, 0.0))
    # A rerouted job's deployment field is cleared; its last attempt says where it ran.
    where = deployment or record.deployment or (attempts[-1].deployment if attempts else None)
    return Route(deployment=where or None, model=route.model, attempts=attempts), timings


def ended_early(record: JobRecord, status: JobStatus, error: BrokerError,
                policy_ms: float = 0.0) -> JobResult:
    """A job that ends without a reply (rejected, expired, cancelled, failed)."""
    now = time.time()
    route, timings = route_and_timings(record, now, policy_ms)
    return JobResult(
        id=record.id, status=status, tenant=record.tenant, model=_model(record),
        kind=_kind(record), error=ErrorInfo(code=error.code, message=error.message,
                                            retryable=error.retryable),
        metadata=record.metadata, created_at=record.submitted_at, finished_at=now,
        policy=record.policy, timings=timings, route=route,
    )


async def fail_jobs(rt: Runtime, job_ids: list[str], exc: BaseException) -> int:
    """End unfinished jobs as failed with internal_error after a stage crashed."""
    error = InternalError(f"the stage failed: {type(exc).__name__}")
    records = await load_records(rt.redis, job_ids)
    ended: list[tuple[JobResult, int, JobRecord | None]] = [
        (ended_early(record, JobStatus.FAILED, error), 0, record)
        for record in records if record is not None and not record.state.terminal]
    stored = await finish_many(rt, ended)
    return sum(stored)


def missing_payload(job_id: str) -> JobResult:
    """A job whose payload expired before a worker reached it."""
    now = time.time()
    return JobResult(
        id=job_id, status=JobStatus.EXPIRED, model="-", kind="chat",
        error=ErrorInfo(code="payload_expired",
                        message="the job's payload expired before it could run"),
        created_at=now, finished_at=now,
    )


def estimate_usage(record: JobRecord, response: dict[str, Any], catalog: Catalog) -> Usage:
    """Usage counted with tiktoken when the upstream reported none."""
    deployment = catalog.deployments.get(record.deployment or "")
    encoding = (deployment.encoding or encoding_name_for_model(deployment.model)) if (
        deployment) else encoding_name_for_model(record.body.model)
    prompt = record.input_tokens or 0
    completion = 0
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        content = message.get("content")
        if isinstance(content, str):
            completion += count_text(content, encoding)
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=prompt + completion, estimated=True)


def cost_of(usage: Usage, catalog: Catalog, deployment: str | None) -> int:
    """Cost in nano-USD at the deployment's catalog price."""
    spec = catalog.deployments.get(deployment or "")
    if spec is None:
        return 0
    return spec.price.cost_nanousd(usage.prompt_tokens, usage.completion_tokens)
