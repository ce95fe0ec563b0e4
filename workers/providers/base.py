"""The adapter Protocol, the plain data it exchanges, and the registry of adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.catalog import Deployment
from broker.errors import UpstreamError
from broker.plugins import load_plugins
from broker.schemas import JobBody, Usage


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One upstream call, fully built: the HTTP module sends it as is."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpReply:
    """What came back from upstream, before any interpretation."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    elapsed_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class RateLimitSignal:
    """The provider's own view of remaining capacity, from its response headers."""

    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """A successful call, translated into the unified OpenAI-style response."""

    response: dict[str, Any]
    usage: Usage | None
    rate_limits: RateLimitSignal = field(default_factory=RateLimitSignal)


class ProviderAdapter(Protocol):
    """Translation for one provider's wire format; it never sends anything itself."""

    name: str

    def build_request(
        self, deployment: Deployment, body: JobBody, api_key: str | None
    ) -> HttpRequest:
        """Build the provider request for a job body."""
        ...

    def parse_reply(self, deployment: Deployment, body: JobBody, reply: HttpReply) -> UpstreamReply:
        """Turn a 2xx reply into the unified response; raise UpstreamBadResponse if unreadable."""
        ...

    def map_error(self, reply: HttpReply) -> UpstreamError:
        """The broker error for a non-2xx reply (retryable or not, with Retry-After)."""
        ...


_REGISTRY: dict[str, ProviderAdapter] = {}


def register(adapter: ProviderAdapter) -> ProviderAdapter:
    """Add an adapter instance under its name; later registrations replace earlier ones."""
    _REGISTRY[adapter.name] = adapter
    return adapter


def get_adapter(name: str) -> ProviderAdapter:
    """The adapter for a provider name, importing the built-in ones on first use."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no provider adapter named {name!r}; known: {sorted(_REGISTRY)}") from None


def registered_names() -> list[str]:
    """Names of every known adapter."""
    _load_builtins()
    return sorted(_REGISTRY)


_builtins_loaded = False


def _load_builtins() -> None:
    # A flag, not "registry empty": an adapter registered before first use must not keep the
    # built-ins from loading, and it keeps its name over a built-in of the same name.
    global _builtins_loaded
    if _builtins_loaded:
        return
    explicit = dict(_REGISTRY)
    load_plugins("workers.providers")
    _REGISTRY.update(explicit)
    _builtins_loaded = True
