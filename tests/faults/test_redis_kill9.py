"""Runs counted against max_redeliveries: only a job taken over by another worker counts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import redis.asyncio as aioredis

from broker import jobstore as js
from broker.localstack import EmbeddedRedis
from workers import model_stage


async def _runs(url: str, runner: str, job_id: str, times: int) -> list[int]:
    client: Any = aioredis.Redis.from_url(url, decode_responses=True)
    rt: Any = SimpleNamespace(redis=client)
    model_stage.RUNNER = runner
    try:
        return [(await model_stage._claim(rt, [job_id]))[0][1] for _ in range(times)]
    finally:
        await client.aclose()


def test_a_step_run_again_by_the_same_worker_is_not_a_redelivery(
        redis_server: EmbeddedRedis) -> None:
    job_id = js.new_job_id()
    sync = __import__("redis").Redis.from_url(redis_server.url, decode_responses=True)
    sync.hset(js.job_key(job_id), mapping={js.F_BODY: "{}"})
    saved = model_stage.RUNNER
    try:
        # Five re-runs of the step by one live worker (outages): still its first delivery.
        assert asyncio.run(_runs(redis_server.url, "host:1:a", job_id, 5)) == [1] * 5
        # A restarted worker (another process) takes it over: that is one redelivery.
        assert asyncio.run(_runs(redis_server.url, "host:2:b", job_id, 2)) == [2, 2]
    finally:
        model_stage.RUNNER = saved
        sync.delete(js.job_key(job_id))
        sync.close()
