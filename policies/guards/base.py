"""The guard Protocol, the context a guard sees, its verdict, and the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.catalog import Catalog, GuardMode, ModelSpec, Tenant
from broker.errors import PolicyRejection
from broker.plugins import load_plugins
from broker.schemas import JobBody
from broker.tokens import count_chat, count_inputs, encoding_name_for_model


@dataclass(slots=True)
class PolicyContext:
    """Everything a guard may look at for one job; guards fill in what they learn."""

    job_id: str
    body: JobBody
    key_sha256: str
    catalog: Catalog
    lane: str = "interactive"
    key_grants: Mapping[str, str] = field(default_factory=dict)  # key hash -> tenant (Redis)
    tenant_name: str | None = None
    tenant: Tenant | None = None
    model: ModelSpec | None = None
    findings: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    body_changed: bool = False
    _input_tokens: int | None = None

    @property
    def counted_tokens(self) -> int:
        """Input tokens if a guard has counted them already, else 0 (never counts)."""
        return self._input_tokens or 0

    def replace_body(self, body: JobBody) -> None:
        """A redacting guard's rewrite: what leaves the broker from here on."""
        self.body = body
        self.body_changed = True
        self._input_tokens = None

    def record(self, kind: str, count: int = 1) -> None:
        """Count a finding by kind (never its value)."""
        self.findings[kind] = self.findings.get(kind, 0) + count

    @property
    def input_tokens(self) -> int:
        """Prompt tokens, counted once with the encoding of the model's first deployment."""
        if self._input_tokens is None:
            self._input_tokens = count_job_tokens(self.body, self.model)
        return self._input_tokens


def count_job_tokens(body: JobBody, model: ModelSpec | None) -> int:
    """Input tokens of a job body for a model (o200k_base when the model is unknown)."""
    deployment = model.deployments[0] if model else None
    encoding = (deployment.encoding or encoding_name_for_model(deployment.model)) if (
        deployment) else encoding_name_for_model(body.model)
    if body.messages is not None:
        return count_chat([m.model_dump(exclude_none=True) for m in body.messages], encoding)
    return count_inputs(body.input or "", encoding)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's answer: allowed, or refused with the rejection to record."""

    allowed: bool
    rejection: PolicyRejection | None = None

    @classmethod
    def allow(cls) -> Verdict:
        """The job may go on."""
        return _ALLOW

    @classmethod
    def refuse(cls, rejection: PolicyRejection) -> Verdict:
        """The job ends as rejected with this reason."""
        return cls(False, rejection)


_ALLOW = Verdict(True)


class Guard(Protocol):
    """One admission rule."""

    name: str

    def check(self, ctx: PolicyContext) -> Verdict:
        """Decide on one job."""
        ...


class ContentGuard(Protocol):
    """A per-tenant content rule (PII, injection, deny-list ...), configured in the catalog.

    Built once per worker from the tenant's `GuardSettings.options`; `inspect` runs in the
    tenant's configured mode: `log` records findings, `redact` may call ctx.replace_body,
    `block` refuses. `off` guards are never built.
    """

    name: str

    def inspect(self, ctx: PolicyContext, mode: GuardMode) -> Verdict:
        """Look at one job's content in the given mode."""
        ...


ContentGuardFactory = Callable[[dict[str, Any]], ContentGuard]


_REGISTRY: dict[str, Callable[[], Guard]] = {}
DEFAULT_GUARDS = ("tenant_auth", "known_model", "model_allowlist", "authorization",
                  "input_size")


def register_guard(name: str) -> Callable[[Callable[[], Guard]], Callable[[], Guard]]:
    """Class decorator adding a guard factory to the registry under `name`."""

    def decorate(factory: Callable[[], Guard]) -> Callable[[], Guard]:
        _REGISTRY[name] = factory
        return factory

    return decorate


_CONTENT_REGISTRY: dict[str, ContentGuardFactory] = {}


def register_content_guard(name: str) -> Callable[[ContentGuardFactory], ContentGuardFactory]:
    """Decorator adding a content guard factory (options -> guard) to the registry."""

    def decorate(factory: ContentGuardFactory) -> ContentGuardFactory:
        _CONTENT_REGISTRY[name] = factory
        return factory

    return decorate


def build_content_guard(name: str, options: dict[str, Any]) -> ContentGuard:
    """A configured content guard; KeyError names the known ones."""
    load_plugins("policies.guards")
    try:
        factory = _CONTENT_REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown content guard {name!r}; known: "
                       f"{sorted(_CONTENT_REGISTRY)}") from None
    return factory(options)


def build_guards(names: tuple[str, ...] = DEFAULT_GUARDS) -> list[Guard]:
    """Instantiate guards in the given order."""
    load_plugins("policies.guards")
    unknown = [name for name in names if name not in _REGISTRY]
    if unknown:
        raise KeyError(f"unknown guards {unknown}; known: {sorted(_REGISTRY)}")
    return [_REGISTRY[name]() for name in names]
