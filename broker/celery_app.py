"""Celery settings and app factory, free of import-time side effects."""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from broker.catalog import Catalog, load_catalog
from broker.queues import (
    MODEL_TASK,
    POLICY_QUEUE,
    POLICY_TASK,
    PRIORITY_STEPS,
    ROUTE_QUEUE,
    ROUTE_TASK,
    model_queue,
)


def celery_config(catalog: Catalog) -> dict[str, Any]:
    """Celery settings implied by the catalog."""
    settings = catalog.broker
    queues = [Queue(POLICY_QUEUE), Queue(ROUTE_QUEUE)] + [
        Queue(model_queue(name)) for name in catalog.deployments
    ]
    return {
        "broker_url": settings.redis_url,
        "broker_transport": "broker.transport:SafeRedisTransport",
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            # A lost worker's messages come back after the visibility timeout; sweep
            # often enough that they do.
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
            "priority_steps": PRIORITY_STEPS,
            "sep": ":",
            "socket_keepalive": True,
            "health_check_interval": 10,
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        # Workers' own events feed Flower; producers' task-sent events cost the gateway
        # ~17% of its CPU (measured) and add nothing Flower needs to list tasks.
        "task_send_sent_event": False,
        "task_queues": queues,
        "task_default_queue": POLICY_QUEUE,
        "task_create_missing_queues": False,
        "task_routes": {POLICY_TASK: {"queue": POLICY_QUEUE},
                        ROUTE_TASK: {"queue": ROUTE_QUEUE}},
        "task_annotations": {MODEL_TASK: {"time_limit": settings.model_task_time_limit_s}},
        "broker_pool_limit": 32,
    }


def create_app(catalog: Catalog | None = None, *, with_tasks: bool = True) -> Celery:
    """A Celery app for a catalog; producers pass with_tasks=False."""
    catalog = catalog or load_catalog()
    app = Celery("aibroker", include=["workers.tasks"] if with_tasks else [])
    app.conf.update(celery_config(catalog))
    return app

