"""The catalog: one YAML file describing models, deployments, capacity, prices and tenants."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.errors import ConfigError

DEPLOYMENT_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$"
TENANT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ALLOWED_CACHE_SIZE = 4096  # model names remembered per tenant (bounded: names come from jobs)


class Strict(BaseModel):
    """Base for catalog sections: unknown keys are an error, not a silent typo."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Capacity(Strict):
    """What one deployment can take: calls in flight, requests and tokens per minute."""

    concurrency: int = Field(16, ge=1, le=10_000, description="Upstream calls in flight at most.")
    rpm: int = Field(0, ge=0, description="Requests per minute; 0 = no limit.")
    tpm: int = Field(0, ge=0, description="Tokens per minute; 0 = no limit.")


class Price(Strict):
    """USD per one million tokens."""

    input_per_1m: float = Field(0.0, ge=0)
    output_per_1m: float = Field(0.0, ge=0)

    def cost_nanousd(self, prompt_tokens: int, completion_tokens: int) -> int:
        """Cost in nano-USD (integers keep the ledger exact)."""
        return round(prompt_tokens * self.input_per_1m * 1000 + completion_tokens
                     * self.output_per_1m * 1000)


class Deployment(Strict):
    """One place a model runs: a provider endpoint with its own capacity and price."""

    name: str = Field(pattern=DEPLOYMENT_NAME, description="Unique; names the queue model.<name>.")
    provider: str = Field("openai", description="Adapter name in the provider registry.")
    base_url: str = Field(description="Endpoint root, e.g. https://api.openai.com/v1.")
    model: str = Field(description="Model name sent upstream.")
    api_key_env: str | None = Field(None, description="Environment variable holding the key.")
    api_key_file: str | None = Field(
        None, description="File holding the key, read when api_key_env gives none.")
    api_version: str | None = Field(
        None, description="Provider API version (Azure's api-version); adapter default if unset.")
    default_max_tokens: int | None = Field(
        None, ge=1, description="Output cap sent when a job sets none (Anthropic requires one).")
    capacity: Capacity = Capacity()
    price: Price = Price()
    weight: float = Field(1.0, gt=0, description="Share of traffic for the weighted strategy.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Per-call upstream timeout.")
    encoding: Literal["o200k_base", "cl100k_base", "p50k_base"] | None = Field(
        None, description="tiktoken encoding; derived from the model name when unset.")

    def api_key(self) -> str | None:
        """The provider key, read from the environment or the key file at call time."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key or not self.api_key_file:
            return key
        try:
            return Path(self.api_key_file).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None  # like an unset variable: the provider answers 401, with no path leaked


class ModelSpec(Strict):
    """A logical model clients ask for, served by one or more deployments."""

    strategy: str = Field("weighted", description="Routing strategy name.")
    deployments: list[Deployment] = Field(min_length=1)
    fallbacks: list[str] = Field(
        default_factory=list, description="Models tried, in order, when this one cannot serve.")


GuardMode = Literal["off", "log", "redact", "block"]
JobKind = Literal["chat", "embeddings"]
JOB_KINDS: tuple[JobKind, ...] = ("chat", "embeddings")


class GuardSettings(Strict):
    """One content guard for a tenant: its mode and the guard's own options."""

    mode: GuardMode = "block"
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Validated by the guard plug-in itself.")


class RateLimits(Strict):
    """Global limits on a tenant's traffic (0 = no limit)."""

    rpm: int = Field(0, ge=0)
    tpm: int = Field(0, ge=0)
    concurrency: int = Field(0, ge=0, description="Upstream calls in flight at most.")


class Budget(Strict):
    """Spending caps; jobs past a hard cap end `budget_exceeded` (0 = no cap)."""

    tokens_per_day: int = Field(0, ge=0)
    tokens_per_month: int = Field(0, ge=0)
    usd_per_month: float = Field(0.0, ge=0)
    soft_threshold: float = Field(
        0.8, gt=0, le=1, description="Share of a cap that raises a warning event.")


class Tenant(Strict):
    """A caller of the broker, identified by the SHA-256 of its API key."""

    key_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        None, description="A static key; keys made with `aibroker tenants` live in Redis.")
    allowed_models: list[str] = Field(default_factory=list, description="Empty = none allowed.")
    allowed_kinds: list[JobKind] = Field(default_factory=lambda: list(JOB_KINDS))
    max_lane: Literal["interactive", "batch"] = Field(
        "interactive", description="batch: the tenant may not use the interactive lane.")
    max_input_tokens: int = Field(32_000, ge=1)
    max_output_tokens: int | None = Field(None, ge=1, description="Cap on max_tokens asked.")
    limits: RateLimits = RateLimits()
    model_limits: dict[str, RateLimits] = Field(default_factory=dict,
                                                description="Per model for this tenant.")
    on_limit: Literal["queue", "reject"] = Field(
        "queue", description="Over a rate limit: wait in the queue, or end rate_limited.")
    budget: Budget = Budget()
    model_budgets: dict[str, Budget] = Field(default_factory=dict)
    guards: dict[str, GuardSettings] = Field(
        default_factory=dict, description="Content guards by plug-in name, run in this order.")

    _allowed: dict[str, bool] = PrivateAttr(default_factory=dict)

    def key_matches(self, key_sha256: str) -> bool:
        """Constant-time comparison of a presented key's hash against the static one."""
        return self.key_sha256 is not None and hmac.compare_digest(key_sha256, self.key_sha256)

    def allows(self, model: str) -> bool:
        """Whether the tenant may call this logical model (shell-style wildcards)."""
        known = self._allowed.get(model)
        if known is None:  # asked for every job: match the patterns once per model name
            known = any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models)
            if len(self._allowed) < _ALLOWED_CACHE_SIZE:
                self._allowed[model] = known
        return known


class RetrySettings(Strict):
    """How model workers retry upstream failures."""

    max_attempts: int = Field(4, ge=1, le=20)
    backoff_base_s: float = Field(0.25, gt=0)
    backoff_max_s: float = Field(20.0, gt=0)
    retry_after_cap_s: float = Field(60.0, gt=0, description="Longest Retry-After honoured.")


class AdaptiveSettings(Strict):
    """How a deployment's effective capacity reacts to upstream pressure (AIMD)."""

    decrease_factor: float = Field(0.5, gt=0, lt=1, description="Multiplier on a 429.")
    increase_step: float = Field(0.02, gt=0, le=1, description="Added back per success.")
    min_factor: float = Field(0.1, gt=0, le=1, description="Floor of the factor.")
    decrease_interval_s: float = Field(1.0, ge=0, description="At most one cut this often.")
    low_remaining_requests: int = Field(
        0, ge=0, description="x-ratelimit-remaining-requests at or below this is pressure.")


class HealthSettings(Strict):
    """When a deployment's circuit opens, and how long it stays open."""

    failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open it.")
    cooldown_s: float = Field(30.0, gt=0, description="Open time before a probe is let through.")


class CapacitySettings(Strict):
    """Global capacity enforcement shared by every model worker."""

    window_s: int = Field(
        60, ge=1, le=3600, description="The RPM/TPM sliding window; limits scale to it.")
    lease_margin_s: float = Field(
        5.0, ge=0, description="Lease lifetime beyond the call timeout (a dead worker's slot "
                               "frees after timeout_s + this).")
    default_max_tokens: int = Field(
        256, ge=1, description="Completion tokens assumed for a TPM estimate without max_tokens.")
    max_wait_s: float = Field(
        60.0, gt=0, description="A job waiting longer for capacity goes back to its queue.")
    lease_reuse_s: float = Field(
        1.0, ge=0, description="How long a concurrency lease may pass straight from one call "
                               "to the next waiting in the same worker, without a round trip "
                               "to Redis, before it goes back to the shared pool (0: never). "
                               "Deployments limited by concurrency only.")
    adaptive: AdaptiveSettings = AdaptiveSettings()
    health: HealthSettings = HealthSettings()


class BrokerSettings(Strict):
    """Runtime settings of the broker itself."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    visibility_timeout_s: int = Field(3600, ge=10)
    model_task_time_limit_s: int = Field(900, ge=5, description="Hard limit of one model task.")
    result_ttl_s: int = Field(7 * 86400, ge=60)
    payload_ttl_s: int = Field(7 * 86400, ge=60)
    memory_high_water: float = Field(
        0.9, gt=0, le=1,
        description="Share of Redis maxmemory above which new jobs are refused (broker_full), "
                    "so that finishing accepted work always has room.")
    usage_retention_days: int = Field(400, ge=1)
    idempotency_ttl_s: int = Field(
        86_400, ge=60, description="How long an idempotency key keeps returning its job/batch.")
    batch_ttl_s: int = Field(
        30 * 86_400, ge=60,
        description="How long a batch record outlives its completion window (keep >= "
                    "result_ttl_s so aged-out results still read as expired).")
    batch_size: int = Field(64, ge=1, le=1000, description="Jobs carried by one queue message.")
    max_redeliveries: int = Field(3, ge=0, description="Worker losses before a job fails.")
    key_rotation_grace_s: int = Field(
        86_400, ge=0, description="How long a rotated-out tenant key keeps working.")
    audit_max_entries: int = Field(1_000_000, ge=1000, description="Audit stream length cap.")
    audit_retention_days: int = Field(90, ge=1, description="Audit entries older are trimmed.")
    catalog_reload_s: float = Field(
        2.0, ge=0, description="How often workers look for catalog changes (0 = never).")
    inline_routing: bool = Field(True, description="Policy workers route in-process.")
    gateway_concurrency: int = Field(4, ge=1, description="Threads of a policy/route worker.")
    http_transport: Literal["aiohttp", "httpx", "aiohttp-direct"] = Field(
        "aiohttp-direct",
        description="HTTP stack of model workers: aiohttp-direct (aiohttp alone), aiohttp "
                    "(httpx's API over the aiohttp transport) or httpx (httpx's own pool); "
                    "chosen by measurement, see bench/results.")
    retry: RetrySettings = RetrySettings()
    capacity: CapacitySettings = CapacitySettings()

    @model_validator(mode="after")
    def _visibility_above_time_limit(self) -> BrokerSettings:
        # A message whose task may still be running must not be handed to a second worker.
        if self.visibility_timeout_s < 2 * self.model_task_time_limit_s:
            raise ValueError(
                f"visibility_timeout_s ({self.visibility_timeout_s}) must be at least twice "
                f"model_task_time_limit_s ({self.model_task_time_limit_s})"
            )
        return self


class Catalog(Strict):
    """The whole configuration: broker settings, models and tenants."""

    broker: BrokerSettings = BrokerSettings()
    models: dict[Annotated[str, Field(pattern=MODEL_NAME)], ModelSpec]
    tenants: dict[Annotated[str, Field(pattern=TENANT_NAME)], Tenant] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _deployment_names_unique(self) -> Catalog:
        seen: dict[str, str] = {}
        for model_name, spec in self.models.items():
            for deployment in spec.deployments:
                if deployment.name in seen:
                    raise ValueError(
                        f"deployment {deployment.name!r} is declared by both "
                        f"{seen[deployment.name]!r} and {model_name!r}"
                    )
                seen[deployment.name] = model_name
        return self

    @model_validator(mode="after")
    def _fallbacks_exist(self) -> Catalog:
        for name, spec in self.models.items():
            unknown = [f for f in spec.fallbacks if f not in self.models or f == name]
            if unknown:
                raise ValueError(f"model {name!r} names unknown or itself as fallback: {unknown}")
        return self

    @cached_property
    def deployments(self) -> dict[str, Deployment]:
        """Every deployment by its unique name."""
        return {d.name: d for spec in self.models.values() for d in spec.deployments}

    @cached_property
    def model_of_deployment(self) -> dict[str, str]:
        """The logical model each deployment serves."""
        return {d.name: m for m, spec in self.models.items() for d in spec.deployments}

    def find_tenant(self, key_sha256: str) -> tuple[str, Tenant] | None:
        """The tenant owning this key hash; every tenant is compared, so timing tells nothing."""
        found: tuple[str, Tenant] | None = None
        for name, tenant in self.tenants.items():
            if tenant.key_matches(key_sha256) and found is None:
                found = (name, tenant)
        return found


class EnvOverrides(BaseSettings):
    """Environment variables that override the file (AIBROKER_REDIS_URL, ...)."""

    model_config = SettingsConfigDict(env_prefix="AIBROKER_", extra="ignore")

    config: str = "aibroker.yaml"
    redis_url: str | None = None
    visibility_timeout_s: int | None = None
    batch_size: int | None = None


def _format_errors(path: Path, exc: PydanticValidationError) -> str:
    lines = [f"invalid catalog {path}:"]
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(root)"
        lines.append(f"  {location}: {error['msg']}")
    return "\n".join(lines)


def parse_catalog(data: dict[str, Any], source: Path, env: EnvOverrides | None = None) -> Catalog:
    """Validate a catalog mapping, applying environment overrides."""
    env = env or EnvOverrides()
    broker_section = dict(data.get("broker") or {})
    for field in ("redis_url", "visibility_timeout_s", "batch_size"):
        value = getattr(env, field)
        if value is not None:
            broker_section[field] = value
    merged = {**data, "broker": broker_section}
    try:
        return Catalog.model_validate(merged)
    except PydanticValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate the catalog file (AIBROKER_CONFIG, default aibroker.yaml)."""
    env = EnvOverrides()
    source = Path(path or env.config)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"catalog file {source} not found: set AIBROKER_CONFIG to your catalog "
                          "(examples/aibroker.yaml is a complete one to start from)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid catalog {source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid catalog {source}: the top level must be a mapping")
    return parse_catalog(raw, source, env)


def hash_key(api_key: str) -> str:
    """The SHA-256 hex digest stored in the catalog for a tenant key."""
    return hashlib.sha256(api_key.encode()).hexdigest()
