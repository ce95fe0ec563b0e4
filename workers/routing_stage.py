"""Routing stage: pick each admitted job's deployment by its model's strategy."""

from __future__ import annotations

from collections import defaultdict

from broker import jobstore as js
from broker.jobstore import JobRecord
from workers.runtime import Runtime
from workers.store import load_records

DispatchKey = tuple[str, str]


def choose_deployment(rt: Runtime, record: JobRecord) -> str:
    """The deployment that should run this job."""
    model = record.body.model
    spec = rt.catalog.models[model]
    strategy = rt.strategies[model]
    return strategy.choose(spec.deployments, record.input_tokens or 0, rt.rng).name


async def route_batch(rt: Runtime, job_ids: list[str]) -> dict[DispatchKey, list[str]]:
    """Route a batch of admitted jobs; returns deployment/lane -> job ids."""
    plan: dict[DispatchKey, list[str]] = defaultdict(list)
    records = await load_records(rt.redis, job_ids)
    async with rt.redis.pipeline(transaction=False) as pipe:
        for record in records:
            if record is None or record.state.terminal:
                continue
            deployment = record.deployment or choose_deployment(rt, record)
            pipe.hset(js.job_key(record.id), js.F_DEPLOYMENT, deployment)
            plan[(deployment, record.lane)].append(record.id)
        await pipe.execute()
    return plan
