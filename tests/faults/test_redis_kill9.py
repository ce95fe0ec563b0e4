"""Runs counted against max_redeliveries: only a job taken over by another worker counts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import redis
import redis.asyncio as aioredis
from celery.worker.consumer.consumer import Consumer as CeleryConsumer
from kombu import Connection, Consumer, Exchange, Producer, Queue

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
    sync = redis.Redis.from_url(redis_server.url, decode_responses=True)
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


def _consumer_holding_a_message(url: str) -> tuple[Any, Any]:
    """A connection shaped like a worker's: a task channel holding one unacknowledged
    message with a BRPOP pending, and a second channel on a fanout queue (the pidbox)."""
    conn = Connection(url, transport="broker.transport:SafeRedisTransport")
    queue = Queue("kill9", Exchange("kill9"), "kill9")
    channel: Any = conn.default_channel
    held: list[Any] = []
    Consumer(channel, [queue], callbacks=[lambda _body, msg: held.append(msg)],
             accept=["json"]).consume()
    control = Queue("kill9.ctl", Exchange("kill9.ctl", type="fanout"), auto_delete=True)
    Consumer(conn.channel(), [control], no_ack=True, accept=["json"]).consume()
    Producer(channel).publish({"job": 1}, exchange=queue.exchange, routing_key="kill9")
    while not held:
        conn.drain_events(timeout=5)
    channel._brpop_start()
    return conn, held[0]


def test_a_lost_connection_never_ends_the_consumer() -> None:
    with EmbeddedRedis() as server:
        conn, message = _consumer_holding_a_message(server.url)
        # A clean stop loses the consumer's connection as kill -9 does and keeps the held
        # message on disk, so the test can check it is not lost.
        server.shutdown()
        consumer: Any = SimpleNamespace(connection=conn, app=SimpleNamespace(conf=SimpleNamespace(
            worker_cancel_long_running_tasks_on_connection_loss=True,
            worker_enable_prefetch_count_reduction=False)))
        # Celery's own handler: before the guard it raised AttributeError ('hostname').
        CeleryConsumer.on_connection_error_after_connected(consumer, ConnectionError("lost"))
        assert consumer.connection is None
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            back = client.llen("kill9") + client.hexists("unacked", message.delivery_tag)
            assert back == 1  # on its queue again, or still held until it is restored
        finally:
            client.close()
