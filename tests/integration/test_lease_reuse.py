"""A concurrency lease passed from one call to the next: no Redis admission, no leak."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from broker import keys
from broker.catalog import CapacitySettings
from broker.localstack import EmbeddedRedis
from workers.capacity import CapacityStore, Lease, Scope

CONCURRENCY_ONLY = Scope("dep:reuse", concurrency=2, rpm=0, tpm=0, lease_ttl_ms=30_000,
                         adaptive=True)
RATED = Scope("dep:rated-reuse", concurrency=2, rpm=600, tpm=0, lease_ttl_ms=30_000,
              adaptive=True)


async def _with_store(server: EmbeddedRedis, settings: CapacitySettings,
                      body: Callable[[aioredis.Redis, CapacityStore], Awaitable[None]]) -> None:
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        await client.delete(*(keys.capacity_leases(s.name) for s in (CONCURRENCY_ONLY, RATED)),
                            *(keys.capacity_ledger(s.name) for s in (CONCURRENCY_ONLY, RATED)))
        await body(client, CapacityStore(client, settings))
    finally:
        await client.aclose()


def test_passed_lease_admits_the_next_call_without_a_new_admission(
        redis_server: EmbeddedRedis) -> None:
    async def body(client: aioredis.Redis, store: CapacityStore) -> None:
        first = await store.acquire(CONCURRENCY_ONLY, 10, None)
        expiry_before = await client.zscore(keys.capacity_leases(CONCURRENCY_ONLY.name),
                                            first.lease_id)
        assert store.can_pass_on(CONCURRENCY_ONLY, first)
        await asyncio.sleep(0.005)
        settled = store.pass_on(CONCURRENCY_ONLY, first, "ok", 50.0)
        second = await store.acquire(CONCURRENCY_ONLY, 10, None)
        assert second is first  # taken here, not from Redis
        assert await settled == "closed"
        leases = keys.capacity_leases(CONCURRENCY_ONLY.name)
        assert await client.zcard(leases) == 1
        assert (await client.zscore(leases, first.lease_id) or 0) > (expiry_before or 0)
        ledger = await client.hgetall(keys.capacity_ledger(CONCURRENCY_ONLY.name))
        assert ledger["calls"] == "1" and ledger["handoffs"] == "1"
        state = await client.hgetall(keys.deployment_state("reuse"))
        assert float(state["ewma_ms"]) == 50.0  # the first call's outcome was settled
        await store.release(CONCURRENCY_ONLY, second, "ok", 0, 40.0)
        assert await client.zcard(leases) == 0

    asyncio.run(_with_store(redis_server, CapacitySettings(), body))


def test_a_lease_nobody_takes_goes_back_to_the_shared_pool(redis_server: EmbeddedRedis) -> None:
    async def body(client: aioredis.Redis, store: CapacityStore) -> None:
        lease = await store.acquire(CONCURRENCY_ONLY, 10, None)
        await store.pass_on(CONCURRENCY_ONLY, lease, "ok", 50.0)
        leases = keys.capacity_leases(CONCURRENCY_ONLY.name)
        assert await client.zcard(leases) == 1
        for _ in range(500):  # unclaimed leases are reclaimed after 20 ms; allow 10 s
            if not await client.zcard(leases):
                break
            await asyncio.sleep(0.02)
        assert await client.zcard(leases) == 0  # long before the lease's own 30 s expiry
        fresh = await store.acquire(CONCURRENCY_ONLY, 10, None)
        assert fresh.lease_id != lease.lease_id

    asyncio.run(_with_store(redis_server, CapacitySettings(), body))


def test_leases_of_rated_scopes_old_leases_and_disabled_reuse_are_not_passed_on(
        redis_server: EmbeddedRedis) -> None:
    async def body(client: aioredis.Redis, store: CapacityStore) -> None:
        rated = await store.acquire(RATED, 10, None)
        assert not store.can_pass_on(RATED, rated)  # each call must count against the RPM
        fresh = await store.acquire(CONCURRENCY_ONLY, 10, None)
        assert store.can_pass_on(CONCURRENCY_ONLY, fresh)
        old = Lease(fresh.lease_id, fresh.bucket, 0, taken_at=time.monotonic() - 1.5)
        assert not store.can_pass_on(CONCURRENCY_ONLY, old)
        off = CapacityStore(client, CapacitySettings(lease_reuse_s=0))
        assert not off.can_pass_on(CONCURRENCY_ONLY, fresh)

    asyncio.run(_with_store(redis_server, CapacitySettings(), body))
