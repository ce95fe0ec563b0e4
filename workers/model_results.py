"""JobResults of the model stage: a reply or an upstream error, with route and timings."""

from __future__ import annotations

import time

from broker.catalog import Deployment
from broker.errors import UpstreamError
from broker.jobstore import JobRecord
from broker.schemas import ErrorInfo, JobResult, JobStatus, Route, Timings
from workers.outcomes import cost_of, estimate_usage, route_and_timings
from workers.providers.base import UpstreamReply
from workers.runtime import Runtime


def _route_and_timings(record: JobRecord, deployment: Deployment) -> tuple[Route, Timings, float]:
    now = time.time()
    route, timings = route_and_timings(record, now, deployment=deployment.name)
    route.model = record.route.model or record.body.model
    return route, timings, now


def succeeded_result(rt: Runtime, record: JobRecord, deployment: Deployment,
                     reply: UpstreamReply) -> tuple[JobResult, int]:
    """The result of a job that got its reply, and its cost in nano-USD."""
    route, timings, now = _route_and_timings(record, deployment)
    usage = reply.usage or estimate_usage(record, reply.response, rt.catalog)
    cost = cost_of(usage, rt.catalog, deployment.name)
    body = record.body
    return JobResult(
        id=record.id, status=JobStatus.SUCCEEDED, tenant=record.tenant, model=body.model,
        kind=body.kind, response=reply.response, usage=usage, cost_usd=cost / 1e9,
        route=route, timings=timings, metadata=record.metadata, policy=record.policy,
        created_at=record.submitted_at, finished_at=now,
    ), cost


def failed_result(record: JobRecord, deployment: Deployment, error: UpstreamError) -> JobResult:
    """The result of a job the upstream refused for good."""
    route, timings, now = _route_and_timings(record, deployment)
    body = record.body
    return JobResult(
        id=record.id, status=JobStatus.FAILED, tenant=record.tenant, model=body.model,
        kind=body.kind, route=route, timings=timings, metadata=record.metadata,
        error=ErrorInfo(code=error.code, message=error.message, retryable=error.retryable),
        policy=record.policy, created_at=record.submitted_at, finished_at=now,
    )
