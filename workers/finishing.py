"""Ending jobs from a worker: the result and ledger step, then the budget settlement."""

from __future__ import annotations

from broker.jobstore import JobRecord
from broker.schemas import JobResult
from workers.budgets import Reservation
from workers.runtime import Runtime


async def _settle(rt: Runtime, record: JobRecord | None, result: JobResult, cost: int) -> None:
    # Settled whether or not this run stored the result: the settlement has its own
    # once-per-job marker, and a run that stored but died before settling is covered.
    if record is not None and record.budget_json:
        await rt.budgets.settle(record.id, Reservation.from_json(record.budget_json),
                                result.usage.total_tokens, cost)


async def finish(rt: Runtime, result: JobResult, cost: int,
                 record: JobRecord | None = None) -> bool:
    """Store one terminal result with its usage; False if the job had already ended."""
    stored = await rt.backend.finish(rt.redis, result, cost, rt.scripts)
    await _settle(rt, record, result, cost)
    return stored


async def finish_many(rt: Runtime,
                      items: list[tuple[JobResult, int, JobRecord | None]]) -> list[bool]:
    """Store several results in one round trip, then settle their budgets."""
    stored = await rt.backend.finish_many(rt.redis, [(result, cost) for result, cost, _ in items])
    for result, cost, record in items:
        await _settle(rt, record, result, cost)
    return stored
