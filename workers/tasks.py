"""Thin Celery tasks: decode ids, run the stage on the worker loop, send jobs onward."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from celery import Task
from kombu.exceptions import OperationalError
from redis.exceptions import BusyLoadingError, OutOfMemoryError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.app import app
from broker.queues import LANE_PRIORITY, MODEL_TASK, POLICY_TASK, ROUTE_TASK, model_queue
from workers import model_stage, policy_stage, routing_stage
from workers.outcomes import fail_jobs
from workers.runtime import get_runtime

DispatchKey = tuple[str, str]
log = logging.getLogger("aibroker.tasks")
# Redis restarting or briefly unreachable (kombu wraps it as OperationalError when a
# message cannot be sent), or full (noeviction refuses writes until memory returns: waiting
# keeps the message unacknowledged). Anything else is a bug: its jobs are failed, not lost.
INFRA_ERRORS = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OutOfMemoryError,
                OperationalError)
T = TypeVar("T")


def through_outages(step: Callable[[], T]) -> T:
    """Run a stage step; while Redis is unreachable, wait and run the whole step again.

    The step's message stays unacknowledged meanwhile. Celery's own retry would need to
    send a new message, which fails while Redis is away, and the failed task's message is
    then acknowledged with its jobs unfinished; waiting here loses nothing. Every stage is
    idempotent per job id (jobs already ended are skipped), so a second run changes only
    what the first did not finish. Gives up after the visibility timeout, by when Redis
    has put the message back on its queue for another run.
    """
    rt = get_runtime()
    give_up = time.monotonic() + rt.settings.visibility_timeout_s
    delay = 0.25
    while True:
        try:
            return step()
        except INFRA_ERRORS as exc:
            if time.monotonic() + delay > give_up:
                raise
            log.warning("Redis unreachable (%s); the batch runs again in %.2f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            rt.reconnect()  # pooled connections from before a restart fail once each


class StageTask(Task):  # type: ignore[type-arg]
    """Ends a batch's jobs as failed on any error but a Redis outage (see through_outages)."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        """Fail every job of the batch, so none waits forever in `pending`."""
        job_ids = args[-1] if args else []
        # Only a message whose ids are ill-formed names no jobs to fail; any other error
        # (a TypeError from one bad job included) must end the jobs, not strand them.
        if not isinstance(job_ids, list) or not all(isinstance(i, str) for i in job_ids):
            return
        try:
            rt = get_runtime()
            rt.call(fail_jobs(rt, list(job_ids), exc), timeout=30)
        except Exception:
            log.exception("could not record the failure of %d jobs", len(job_ids))


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _valid_ids(job_ids: Any) -> list[str]:
    # A hand-made message with the wrong shape must fail loudly, not crash the stage.
    if not isinstance(job_ids, list) or not all(isinstance(i, str) for i in job_ids):
        raise TypeError("expected a list of job id strings")
    return job_ids


def dispatch_to_models(plan: dict[DispatchKey, list[str]], batch_size: int) -> None:
    """Send admitted jobs to their deployments' queues, in batches, by lane priority."""
    for (deployment, lane), ids in plan.items():
        for chunk in _chunks(ids, batch_size):
            app.send_task(MODEL_TASK, args=[deployment, chunk], queue=model_queue(deployment),
                          priority=LANE_PRIORITY.get(lane, 0))


@app.task(name=POLICY_TASK, base=StageTask)
def policy(job_ids: list[str]) -> dict[str, int]:
    """Admit or reject a batch of jobs, and pass admitted ones on."""
    rt = get_runtime()
    ids = _valid_ids(job_ids)

    def step() -> dict[str, int]:
        plan = rt.call(policy_stage.admit_batch(rt, ids))
        dispatch_to_models(plan.to_model, rt.settings.batch_size)
        for chunk in _chunks(plan.to_route, rt.settings.batch_size):
            app.send_task(ROUTE_TASK, args=[chunk])
        return plan.summary()

    return through_outages(step)


@app.task(name=ROUTE_TASK, base=StageTask)
def route(job_ids: list[str]) -> dict[str, int]:
    """Choose deployments for a batch of admitted jobs."""
    rt = get_runtime()
    ids = _valid_ids(job_ids)

    def step() -> dict[str, int]:
        plan = rt.call(routing_stage.route_batch(rt, ids))
        dispatch_to_models(plan, rt.settings.batch_size)
        return {deployment: len(routed) for (deployment, _), routed in plan.items()}

    return through_outages(step)


@app.task(name=MODEL_TASK, base=StageTask)
def model(deployment: str, job_ids: list[str]) -> dict[str, int]:
    """Run a batch of jobs on one deployment."""
    rt = get_runtime()
    if deployment not in rt.catalog.deployments:
        raise ValueError(f"unknown deployment {deployment!r}")
    ids = _valid_ids(job_ids)

    def step() -> dict[str, int]:
        outcome = rt.call(model_stage.run_batch(rt, deployment, ids))
        for chunk in _chunks(outcome.reroute, rt.settings.batch_size):
            app.send_task(ROUTE_TASK, args=[chunk])
        for chunk in _chunks(outcome.requeue, rt.settings.batch_size):
            app.send_task(MODEL_TASK, args=[deployment, chunk], queue=model_queue(deployment),
                          priority=LANE_PRIORITY["batch"])
        return dict(outcome.counts)

    return through_outages(step)
