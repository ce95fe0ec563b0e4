"""Routing stage: pick each job's deployment by its model's strategy, skipping open circuits.

Admitted jobs are routed here (inline in the policy worker by default); jobs that a
deployment could not serve come back through the `route` queue and move on to another
deployment of their model, then to the model's fallbacks, in order.
"""

from __future__ import annotations

import time
from collections import defaultdict

from redis.exceptions import RedisError

from broker import jobstore as js
from broker.catalog import Deployment
from broker.errors import InvalidJob, UpstreamUnavailable
from broker.jobstore import JobRecord
from broker.schemas import ErrorInfo, JobResult, JobStatus
from policies.routing import States
from workers.finishing import finish_many
from workers.outcomes import ended_early
from workers.runtime import Runtime
from workers.store import load_records

DispatchKey = tuple[str, str]  # (deployment, lane)


def _available(rt: Runtime, deployment: Deployment, states: States, now_ms: float) -> bool:
    state = states.get(deployment.name)
    if state is None or state.state != "open":
        return True
    return now_ms - state.opened_at_ms >= rt.settings.capacity.health.cooldown_s * 1000


def model_chain(rt: Runtime, record: JobRecord) -> list[str]:
    """The requested model, then its fallbacks the tenant may use."""
    requested = record.body.model
    tenant = rt.catalog.tenants.get(record.tenant or "")
    chain = [requested] + [m for m in rt.catalog.models[requested].fallbacks
                           if tenant is None or tenant.allows(m)]
    return list(dict.fromkeys(chain))


def choose_route(rt: Runtime, record: JobRecord, states: States,
                 ignore_health: bool = False) -> tuple[str, str] | None:
    """(model, deployment) for the job's next try, or None when nothing is left."""
    tried = set(record.route.tried)
    now_ms = time.time() * 1000
    for model in model_chain(rt, record):
        candidates = [d for d in rt.catalog.models[model].deployments if d.name not in tried
                      and (ignore_health or _available(rt, d, states, now_ms))]
        if candidates:
            chosen = rt.strategies[model].choose(candidates, record.input_tokens or 0, rt.rng,
                                                 states)
            return model, chosen.name
    return None


def choose_deployment(rt: Runtime, record: JobRecord, states: States) -> tuple[str, str]:
    """A first route for an admitted job; health is ignored only if every route is down."""
    return choose_route(rt, record, states) or choose_route(rt, record, states,
                                                            ignore_health=True) or (
        record.body.model, rt.catalog.models[record.body.model].deployments[0].name)


def _exhausted(record: JobRecord) -> JobResult:
    route = record.route
    error = route.last_error or ErrorInfo(
        code=UpstreamUnavailable.code, message="no deployment of the model or its fallbacks "
        "could serve the job", retryable=True)
    result = ended_early(record, JobStatus.FAILED, UpstreamUnavailable(error.message))
    result.error = error
    result.route.attempts = route.attempts
    result.route.model = route.model
    return result


async def route_batch(rt: Runtime, job_ids: list[str]) -> dict[DispatchKey, list[str]]:
    """Route a batch of jobs to their next deployment; returns deployment/lane -> ids."""
    plan: dict[DispatchKey, list[str]] = defaultdict(list)
    records = await load_records(rt.redis, job_ids)
    states = await rt.deployment_states()
    finished: list[tuple[JobResult, int, JobRecord | None]] = []
    async with rt.redis.pipeline(transaction=False) as pipe:
        for record in records:
            if record is None or record.state.terminal:
                continue
            try:
                choice = choose_route(rt, record, states)
            except RedisError:
                raise
            except Exception as exc:  # one bad job must not strand the rest
                error = InvalidJob(f"the routing stage could not process the job: "
                                   f"{type(exc).__name__}: {exc}"[:300])
                finished.append((ended_early(record, JobStatus.FAILED, error), 0, record))
                continue
            if choice is None:
                finished.append((_exhausted(record), 0, record))
                continue
            model, deployment = choice
            route = record.route.model_copy(update={"model": model})
            pipe.hset(js.job_key(record.id), mapping={
                js.F_DEPLOYMENT: deployment, js.F_ROUTE: route.model_dump_json()})
            plan[(deployment, record.lane)].append(record.id)
        await pipe.execute()
    if finished:
        await finish_many(rt, finished)
    return plan
