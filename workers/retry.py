"""One job's upstream call: attempts, backoff and the record of what each attempt did."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from time import perf_counter

from broker.catalog import Deployment, RetrySettings
from broker.errors import UpstreamError
from broker.schemas import Attempt, JobBody
from workers.http import HttpSender
from workers.providers.base import HttpRequest, ProviderAdapter, RateLimitSignal, UpstreamReply

Sleep = Callable[[float], Awaitable[object]]
# Exponents past this are far beyond any backoff_max_s and would only risk overflow.
_MAX_EXPONENT = 60


@dataclass(slots=True)
class CallOutcome:
    """The result of call_upstream: a reply or the last error, plus every attempt made."""

    reply: UpstreamReply | None
    error: UpstreamError | None
    attempts: list[Attempt]
    upstream_ms: float
    last_rate_limits: RateLimitSignal | None

    @property
    def ok(self) -> bool:
        """True when an attempt succeeded."""
        return self.reply is not None


def backoff_delay(
    attempt: int, retry_after: float | None, settings: RetrySettings, rng: random.Random
) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based), honouring Retry-After."""
    exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
    ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2.0**exponent)
    if retry_after is None or math.isnan(retry_after):
        return rng.uniform(0.0, ceiling)  # full jitter
    wait = min(max(retry_after, 0.0), settings.retry_after_cap_s)
    # Many workers get the same Retry-After; a little jitter keeps them from returning at once.
    return wait + rng.uniform(0.0, min(settings.backoff_base_s, ceiling))


async def call_upstream(
    sender: HttpSender,
    adapter: ProviderAdapter,
    deployment: Deployment,
    body: JobBody,
    api_key: str | None,
    settings: RetrySettings,
    rng: random.Random,
    sleep: Sleep = asyncio.sleep,
) -> CallOutcome:
    """Call the deployment, retrying retryable failures up to settings.max_attempts."""
    request = adapter.build_request(deployment, body, api_key)
    attempts: list[Attempt] = []
    upstream_ms = 0.0
    last_limits: RateLimitSignal | None = None
    error: UpstreamError | None = None
    for attempt in range(1, settings.max_attempts + 1):
        result = await attempt_once(sender, adapter, deployment, body, request)
        attempts.append(result.attempt)
        upstream_ms += result.attempt.duration_ms
        last_limits = result.rate_limits or last_limits
        if result.reply is not None:
            return CallOutcome(result.reply, None, attempts, upstream_ms, last_limits)
        error = result.error
        assert error is not None
        if not error.retryable or attempt == settings.max_attempts:
            break
        await sleep(backoff_delay(attempt, error.retry_after, settings, rng))
    return CallOutcome(None, error, attempts, upstream_ms, last_limits)


@dataclass(slots=True)
class AttemptResult:
    """One upstream call: a reply or an error, and its record."""

    reply: UpstreamReply | None
    error: UpstreamError | None
    attempt: Attempt
    rate_limits: RateLimitSignal | None


async def attempt_once(
    sender: HttpSender,
    adapter: ProviderAdapter,
    deployment: Deployment,
    body: JobBody,
    request: HttpRequest,
) -> AttemptResult:
    """Send a built request once and translate what comes back."""
    # Adapters may expose rate_limits(headers); it lets error replies (429s above all)
    # report the provider's view of capacity too.
    read_limits: Callable[[Mapping[str, str]], RateLimitSignal] | None = getattr(
        adapter, "rate_limits", None
    )
    started = perf_counter()
    limits: RateLimitSignal | None = None
    try:
        http = await sender.send(request, deployment.timeout_s)
        if 200 <= http.status < 300:
            reply = adapter.parse_reply(deployment, body, http)
            duration_ms = (perf_counter() - started) * 1000.0
            return AttemptResult(
                reply, None,
                Attempt(deployment=deployment.name, status="ok", duration_ms=duration_ms),
                reply.rate_limits)
        if read_limits is not None:
            limits = read_limits(http.headers)
        error = adapter.map_error(http)
    except UpstreamError as exc:  # transport failures and unreadable 2xx bodies
        error = exc
    duration_ms = (perf_counter() - started) * 1000.0
    return AttemptResult(
        None, error,
        Attempt(deployment=deployment.name, status="error", error_code=error.code,
                duration_ms=duration_ms),
        limits)
