"""Open upstream calls against the real Redis: each is billed with its result or lost once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import redis
import redis.asyncio as aioredis
import yaml

from broker import jobstore as js
from broker import keys
from broker.backend import ResultBackend
from broker.catalog import BrokerSettings, Deployment
from broker.jobstore import JobRecord
from broker.ledger import UsageRow, read_usage
from broker.liveness import worker_id
from broker.localstack import EmbeddedRedis
from broker.schemas import Attempt, JobResult, JobStatus, Route, Usage
from tests.support import deployment, make_catalog
from workers.attempts import OpenAttempts
from workers.script_batcher import ScriptBatcher

T = TypeVar("T")
SETTINGS = BrokerSettings()


def _deployment() -> Deployment:
    name = f"lost-{uuid.uuid4().hex[:8]}"
    return Deployment.model_validate(deployment(name, "http://127.0.0.1:9", "gpt-4.1",
                                                price_in=2.0, price_out=8.0))


async def _record(client: aioredis.Redis, job_id: str) -> JobRecord:
    body = {"model": "chat-large", "max_tokens": 20,
            "messages": [{"role": "user", "content": "hello"}]}
    await client.hset(js.job_key(job_id), mapping={
        js.F_BODY: json.dumps(body), js.F_TENANT: "alpha", js.F_INPUT_TOKENS: 7,
        js.F_SUBMITTED: time.time()})
    fields: dict[str, str | None] = await client.hgetall(  # type: ignore[assignment]
        js.job_key(job_id))
    record = js.decode_hash(job_id, fields)
    assert record is not None
    return record


def _result(job_id: str, dep: Deployment, tokens: tuple[int, int]) -> JobResult:
    now = time.time()
    prompt, completion = tokens
    status = JobStatus.SUCCEEDED if prompt else JobStatus.FAILED
    attempts = [Attempt(deployment=dep.name, status="ok")] if prompt else []
    return JobResult(id=job_id, status=status, tenant="alpha", model="chat-large",
                     kind="chat", created_at=now, finished_at=now,
                     usage=Usage(prompt_tokens=prompt, completion_tokens=completion,
                                 total_tokens=prompt + completion),
                     route=Route(deployment=dep.name, model="chat-large", attempts=attempts))


def _run(url: str, body: Callable[[aioredis.Redis, OpenAttempts], Awaitable[T]]) -> T:
    async def main() -> T:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            return await body(client, OpenAttempts(client, ScriptBatcher(client), SETTINGS))
        finally:
            await client.aclose()

    return asyncio.run(main())


def _row(url: str, dep: Deployment) -> UsageRow:
    rows = read_usage(redis.Redis.from_url(url, decode_responses=True), by=("deployment",),
                      deployment=dep.name)
    return rows[0] if rows else UsageRow(group={"deployment": dep.name})


def test_a_billed_call_is_not_lost_and_a_duplicate_runs_call_is(
        redis_server: EmbeddedRedis) -> None:
    dep, job_id, backend = _deployment(), f"job-{uuid.uuid4().hex}", ResultBackend(SETTINGS)

    async def body(client: aioredis.Redis, attempts: OpenAttempts) -> tuple[bool, bool]:
        record = await _record(client, job_id)
        await attempts.open(record, dep)
        first = await backend.finish(client, _result(job_id, dep, (7, 5)), 100)
        await attempts.open(record, dep)  # a second delivery, run before the first acked
        again = await backend.finish(client, _result(job_id, dep, (7, 5)), 100)
        return first, again

    first, again = _run(redis_server.url, body)
    row = _row(redis_server.url, dep)
    assert (first, again) == (True, False)
    assert (row.requests, row.lost_in_flight) == (1, 1)
    # Estimated from the job: its counted input and its max_tokens, at the deployment's price.
    assert (row.lost_prompt_tokens, row.lost_completion_tokens) == (7, 20)
    assert row.lost_cost_nanousd == dep.price.cost_nanousd(7, 20)


def test_a_redelivered_job_counts_its_open_call_once_and_a_failed_call_not_at_all(
        redis_server: EmbeddedRedis) -> None:
    dep, job_id, backend = _deployment(), f"job-{uuid.uuid4().hex}", ResultBackend(SETTINGS)

    async def body(client: aioredis.Redis, attempts: OpenAttempts) -> None:
        record = await _record(client, job_id)
        await attempts.open(record, dep)  # its worker dies mid-call
        retry = await attempts.open(record, dep)  # the next delivery finds it open
        await attempts.close(job_id, retry)  # that call fails: nothing served
        await backend.finish(client, _result(job_id, dep, (0, 0)), 0)

    _run(redis_server.url, body)
    row = _row(redis_server.url, dep)
    assert (row.requests, row.lost_in_flight) == (0, 1)


def test_an_expired_call_counts_once_its_owner_is_dead(redis_server: EmbeddedRedis) -> None:
    dep = _deployment()
    live_job, dead_job = f"job-{uuid.uuid4().hex}", f"job-{uuid.uuid4().hex}"
    expired_at = time.time() + dep.timeout_s + SETTINGS.capacity.lease_margin_s + 1

    async def body(client: aioredis.Redis, attempts: OpenAttempts) -> tuple[int, int, int]:
        await attempts.open(await _record(client, live_job), dep)
        await attempts.open(await _record(client, dead_job), dep)
        # Only the first call's owner beats on: mark the second's as another process's.
        entry = str(await client.hget(js.job_key(dead_job), js.F_OPEN_ATTEMPT))
        await client.hset(js.job_key(dead_job), js.F_OPEN_ATTEMPT,
                          entry.replace(worker_id(), "gone:1:dead"))
        await client.zadd(keys.workers_alive(), {worker_id(): int(expired_at * 1000)})
        early = await attempts.sweep(now=expired_at - 2)
        expired = await attempts.sweep(now=expired_at)
        overdue = await attempts.sweep(now=expired_at + SETTINGS.model_task_time_limit_s + 1)
        await client.zrem(keys.workers_alive(), worker_id())
        return early, expired, overdue

    early, expired, overdue = _run(redis_server.url, body)
    assert (early, expired, overdue) == (0, 1, 1)  # the dead owner's first, the live one's late
    assert _row(redis_server.url, dep).lost_in_flight == 2


def test_usage_shows_lost_calls_apart_from_billed_usage(redis_server: EmbeddedRedis,
                                                        tmp_path: Path) -> None:
    dep, job_id = _deployment(), f"job-{uuid.uuid4().hex}"

    async def body(client: aioredis.Redis, attempts: OpenAttempts) -> None:
        await attempts.open(await _record(client, job_id), dep)
        await ResultBackend(SETTINGS).finish(client, _result(job_id, dep, (0, 0)), 0)

    _run(redis_server.url, body)
    catalog = make_catalog("http://127.0.0.1:9", redis_url=redis_server.url)
    path = tmp_path / "aibroker.yaml"
    path.write_text(yaml.safe_dump(catalog), encoding="utf-8")

    def usage(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "broker.cli.main", "usage", "--by", "deployment",
             "--deployment", dep.name, *args], env={"AIBROKER_CONFIG": str(path),
                                                    "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=True, timeout=60).stdout

    table, csv_lines = usage(), usage("--format", "csv").splitlines()
    assert "Lost in flight" in table and dep.name in table
    header, line = csv_lines[0].split(","), csv_lines[1].split(",")
    assert dict(zip(header, line, strict=True))["lost_in_flight"] == "1"
    assert dict(zip(header, line, strict=True))["requests"] == "0"
