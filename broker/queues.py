"""Queue and task names shared by producers and workers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kombu import Queue

if TYPE_CHECKING:
    from celery import Celery

POLICY_QUEUE = "policy"
ROUTE_QUEUE = "route"
MODEL_QUEUE_PREFIX = "model."

POLICY_TASK = "aibroker.policy"
ROUTE_TASK = "aibroker.route"
MODEL_TASK = "aibroker.model"

# Celery priority per lane on the Redis transport: 0 is served first.
LANE_PRIORITY = {"interactive": 0, "batch": 6}
PRIORITY_STEPS = [0, 3, 6, 9]


def model_queue(deployment: str) -> str:
    """The queue consumed by one deployment's worker pool."""
    return f"{MODEL_QUEUE_PREFIX}{deployment}"


def declare_model_queues(app: Celery, deployments: Iterable[str]) -> list[str]:
    """Add the queues of deployments the app does not know yet; the names added.

    Producers refuse queues missing from the app's table (`task_create_missing_queues`
    is off), so a deployment added to a running broker's catalog needs its queue here.
    """
    known = app.amqp.queues
    added = []
    for deployment in deployments:
        name = model_queue(deployment)
        if name not in known:
            known.add(Queue(name))
            added.append(name)
    return added
