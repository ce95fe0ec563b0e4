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
from workers.providers.base import ProviderAdapter, RateLimitSignal, UpstreamReply

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
    # Built once: the request is identical on every attempt.
    request = adapter.build_request(deployment, body, api_key)
    # Adapters may expose rate_limits(headers); it lets error replies (429s above all)
    # report the provider's view of capacity too.
    read_limits: Callable[[Mapping[str, str]], RateLimitSignal] | None = getattr(
        adapter, "rate_limits", None
    )
    name = deployment.name
    timeout_s = deployment.timeout_s
    max_attempts = settings.max_attempts
    attempts: list[Attempt] = []
    upstream_ms = 0.0
    last_limits: RateLimitSignal | None = None
    error: UpstreamError | None = None
    for attempt in range(1, max_attempts + 1):
        started = perf_counter()
        try:
            http = await sender.send(request, timeout_s)
            if 200 <= http.status < 300:
                reply = adapter.parse_reply(deployment, body, http)
                duration_ms = (perf_counter() - started) * 1000.0
                attempts.append(Attempt(deployment=name, status="ok", duration_ms=duration_ms))
                return CallOutcome(
                    reply, None, attempts, upstream_ms + duration_ms, reply.rate_limits
                )
            if read_limits is not None:
                last_limits = read_limits(http.headers)
            error = adapter.map_error(http)
        except UpstreamError as exc:  # transport failures and unreadable 2xx bodies
            error = exc
        duration_ms = (perf_counter() - started) * 1000.0
        upstream_ms += duration_ms
        attempts.append(
            Attempt(deployment=name, status="error", error_code=error.code,
                    duration_ms=duration_ms)
        )
        if not error.retryable or attempt == max_attempts:
            break
        await sleep(backoff_delay(attempt, error.retry_after, settings, rng))
    return CallOutcome(None, error, attempts, upstream_ms, last_limits)
