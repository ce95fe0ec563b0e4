"""Budget reservations against the real Redis: once per job, however often it is asked."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from broker import keys
from broker.errors import BudgetExceeded
from broker.localstack import EmbeddedRedis
from workers.budgets import BudgetStore, Reservation

Reply = tuple[Reservation | BudgetExceeded, list[str]]


def test_a_job_reserves_once_even_when_its_batch_is_admitted_again(
        redis_server: EmbeddedRedis) -> None:
    budget = keys.budget("tenant:once", "20261125")
    caps = [(budget, 1_000, 0, 0.8)]

    async def body() -> tuple[Reply, Reply, Reply, dict[str, str]]:
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            await client.delete(budget, keys.budget_reserved("job-a"),
                                keys.budget_reserved("job-b"))
            store = BudgetStore(client)
            first = await store.reserve("job-a", caps, 600, 0)
            again = await store.reserve("job-a", caps, 600, 0)  # the same job, rerun
            other = await store.reserve("job-b", caps, 600, 0)  # would pass 1,000 tokens
            held: dict[str, str] = await client.hgetall(budget)  # type: ignore[assignment]
            return first, again, other, held
        finally:
            await client.aclose()

    first, again, other, held = asyncio.run(body())
    assert isinstance(first[0], Reservation) and isinstance(again[0], Reservation)
    assert first[0].tokens == again[0].tokens == 600
    assert held["reserved_tokens"] == "600"  # held once, not twice
    assert isinstance(other[0], BudgetExceeded)  # another job still counts in full
