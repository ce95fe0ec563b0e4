"""ai-broker: an asynchronous AI gateway on a message queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.client import Client, JobHandle
    from broker.errors import BrokerError
    from broker.schemas import JobRequest, JobResult, JobStatus

__all__ = ["BrokerError", "Client", "JobHandle", "JobRequest", "JobResult", "JobStatus"]
_LAZY = {"Client": "broker.client", "JobHandle": "broker.client", "BrokerError": "broker.errors",
         "JobRequest": "broker.schemas", "JobResult": "broker.schemas",
         "JobStatus": "broker.schemas"}


def __getattr__(name: str) -> Any:
    # Lazy so that `import broker.tokens` (simulator, tests) does not pull in Celery.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'broker' has no attribute {name!r}")
