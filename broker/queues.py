"""Queue and task names shared by producers and workers."""

from __future__ import annotations

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
