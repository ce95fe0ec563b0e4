"""Backoff bounds, the retry loop against a mocked upstream, and the sender's error mapping."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import pytest

from broker.catalog import Deployment, RetrySettings
from broker.errors import (
    UpstreamBadResponse,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from broker.schemas import ChatMessage, JobBody
from workers.http import HttpSender, transport_error
from workers.providers.base import HttpRequest
from workers.providers.openai_compat import OpenAICompatibleAdapter
from workers.retry import CallOutcome, backoff_delay, call_upstream

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai"
CHAT_OK = (FIXTURES / "chat_completion.json").read_bytes()
SERVER_ERROR = (FIXTURES / "error_server.json").read_bytes()
RATE_LIMITED = (FIXTURES / "error_rate_limit.json").read_bytes()
BAD_REQUEST = (FIXTURES / "error_invalid_request.json").read_bytes()
KEY = "sk-test-secret-0123456789"
ADAPTER = OpenAICompatibleAdapter("openai")
DEPLOYMENT = Deployment(name="gpt-main", base_url="https://llm.example.test/v1",
                        model="gpt-4o-mini-2024-07-18", timeout_s=5.0)
SETTINGS = RetrySettings(max_attempts=4, backoff_base_s=0.25, backoff_max_s=20.0,
                         retry_after_cap_s=60.0)
BODY = JobBody(model="gpt-4o-mini", messages=[ChatMessage(role="user", content="hello")])

Step = httpx.Response | Exception | Callable[[httpx.Request], Awaitable[httpx.Response]]


class Upstream:
    """A scripted upstream: each request takes the next step (a response or an exception)."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return await step(request)


class RecordingSleep:
    """Stands in for asyncio.sleep and remembers every delay asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def run(upstream: Upstream, sleep: RecordingSleep,
        settings: RetrySettings = SETTINGS) -> CallOutcome:
    async def scenario() -> CallOutcome:
        sender = HttpSender.with_transport(httpx.MockTransport(upstream))
        try:
            return await call_upstream(sender, ADAPTER, DEPLOYMENT, BODY, KEY, settings,
                                       random.Random(7), sleep=sleep)
        finally:
            await sender.aclose()

    return asyncio.run(scenario())


def codes(outcome: CallOutcome) -> list[str | None]:
    return [attempt.error_code if attempt.status == "error" else "ok"
            for attempt in outcome.attempts]


# --- backoff_delay ---------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    rng = random.Random(42)
    for attempt in range(1, 12):
        ceiling = min(SETTINGS.backoff_max_s, SETTINGS.backoff_base_s * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, None, SETTINGS, rng) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        # Full jitter spreads over the whole range, not just near the ceiling.
        assert min(delays) < ceiling * 0.2
        assert max(delays) > ceiling * 0.8


def test_backoff_is_reproducible_with_a_seed() -> None:
    first = [backoff_delay(n, None, SETTINGS, random.Random(3)) for n in range(1, 6)]
    second = [backoff_delay(n, None, SETTINGS, random.Random(3)) for n in range(1, 6)]
    assert first == second


def test_backoff_survives_odd_attempt_numbers() -> None:
    rng = random.Random(1)
    assert 0.0 <= backoff_delay(0, None, SETTINGS, rng) <= SETTINGS.backoff_base_s
    assert 0.0 <= backoff_delay(10_000, None, SETTINGS, rng) <= SETTINGS.backoff_max_s


def test_retry_after_is_a_floor_with_small_jitter() -> None:
    rng = random.Random(9)
    for attempt in (1, 3, 8):
        delays = [backoff_delay(attempt, 2.0, SETTINGS, rng) for _ in range(200)]
        assert all(2.0 <= delay <= 2.0 + SETTINGS.backoff_base_s for delay in delays)
        assert len(set(delays)) > 1


def test_retry_after_is_capped() -> None:
    rng = random.Random(5)
    delay = backoff_delay(1, 3600.0, SETTINGS, rng)
    assert SETTINGS.retry_after_cap_s <= delay <= SETTINGS.retry_after_cap_s + 0.25
    assert 0.0 <= backoff_delay(1, -4.0, SETTINGS, rng) <= SETTINGS.backoff_base_s


# --- call_upstream ---------------------------------------------------------------------------


def test_first_try_success_sends_the_built_request() -> None:
    upstream = Upstream(httpx.Response(200, content=CHAT_OK,
                                       headers={"X-RateLimit-Remaining-Tokens": "9000"}))
    sleep = RecordingSleep()
    outcome = run(upstream, sleep)
    assert outcome.ok
    assert outcome.error is None
    assert outcome.reply is not None
    assert outcome.reply.usage is not None
    assert outcome.reply.usage.total_tokens == 36
    assert codes(outcome) == ["ok"]
    assert outcome.attempts[0].deployment == "gpt-main"
    assert outcome.upstream_ms == pytest.approx(outcome.attempts[0].duration_ms)
    assert outcome.last_rate_limits is not None
    assert outcome.last_rate_limits.remaining_tokens == 9000
    assert sleep.delays == []
    sent = upstream.requests[0]
    assert str(sent.url) == "https://llm.example.test/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.content)["model"] == "gpt-4o-mini-2024-07-18"


def test_rate_limit_then_success_honours_retry_after() -> None:
    upstream = Upstream(
        httpx.Response(429, content=RATE_LIMITED, headers={"Retry-After": "3"}),
        httpx.Response(200, content=CHAT_OK),
    )
    sleep = RecordingSleep()
    outcome = run(upstream, sleep)
    assert outcome.ok
    assert codes(outcome) == ["upstream_rate_limited", "ok"]
    assert len(sleep.delays) == 1
    assert 3.0 <= sleep.delays[0] <= 3.0 + SETTINGS.backoff_base_s
    assert outcome.upstream_ms == pytest.approx(sum(a.duration_ms for a in outcome.attempts))


def test_server_errors_then_success() -> None:
    upstream = Upstream(httpx.Response(500, content=SERVER_ERROR),
                        httpx.Response(503, content=SERVER_ERROR),
                        httpx.Response(200, content=CHAT_OK))
    sleep = RecordingSleep()
    outcome = run(upstream, sleep)
    assert outcome.ok
    assert codes(outcome) == ["upstream_unavailable", "upstream_unavailable", "ok"]
    assert len(upstream.requests) == 3
    assert len(sleep.delays) == 2
    assert 0.0 <= sleep.delays[0] <= 0.25
    assert 0.0 <= sleep.delays[1] <= 0.5


def test_bad_request_fails_at_once_with_upstream_message() -> None:
    upstream = Upstream(httpx.Response(400, content=BAD_REQUEST))
    sleep = RecordingSleep()
    outcome = run(upstream, sleep)
    assert outcome.reply is None
    assert isinstance(outcome.error, UpstreamRejected)
    assert outcome.error.status == 400
    assert outcome.error.message.startswith("Invalid value: 'robot'.")
    assert codes(outcome) == ["upstream_rejected"]
    assert len(upstream.requests) == 1
    assert sleep.delays == []


def test_exhausted_attempts_return_the_last_error() -> None:
    upstream = Upstream(
        httpx.Response(503, content=SERVER_ERROR),
        httpx.Response(503, content=SERVER_ERROR),
        httpx.Response(429, content=RATE_LIMITED, headers={
            "retry-after-ms": "250", "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1s"}),
    )
    sleep = RecordingSleep()
    settings = SETTINGS.model_copy(update={"max_attempts": 3})
    outcome = run(upstream, sleep, settings)
    assert outcome.reply is None
    assert isinstance(outcome.error, UpstreamRateLimited)
    assert outcome.error.retry_after == 0.25
    assert codes(outcome) == ["upstream_unavailable"] * 2 + ["upstream_rate_limited"]
    assert len(sleep.delays) == 2  # no sleep after the last attempt
    # The 429's own headers still tell the router the deployment is out of requests.
    assert outcome.last_rate_limits is not None
    assert outcome.last_rate_limits.remaining_requests == 0
    assert outcome.last_rate_limits.reset_requests_s == 1.0


def test_malformed_json_success_is_retried() -> None:
    upstream = Upstream(httpx.Response(200, content=b'{"choices": [ truncated'),
                        httpx.Response(200, content=CHAT_OK))
    sleep = RecordingSleep()
    outcome = run(upstream, sleep)
    assert outcome.ok
    assert codes(outcome) == ["upstream_bad_response", "ok"]
    assert len(sleep.delays) == 1


def test_connection_error_is_retried() -> None:
    upstream = Upstream(httpx.ConnectError("[Errno 111] Connection refused"),
                        httpx.RemoteProtocolError("Server disconnected without a response"),
                        httpx.Response(200, content=CHAT_OK))
    sleep = RecordingSleep()
    outcome = run(upstream, sleep)
    assert outcome.ok
    assert codes(outcome) == ["upstream_connection", "upstream_connection", "ok"]


def test_persistent_connection_error_ends_as_connection_error() -> None:
    upstream = Upstream(*(httpx.ConnectError("Connection refused") for _ in range(4)))
    sleep = RecordingSleep()
    outcome = run(upstream, sleep)
    assert isinstance(outcome.error, UpstreamConnectionError)
    assert "Connection refused" in outcome.error.message
    assert KEY not in outcome.error.message
    assert len(outcome.attempts) == SETTINGS.max_attempts
    assert len(sleep.delays) == SETTINGS.max_attempts - 1


def test_slow_upstream_times_out_and_is_retried() -> None:
    async def stall(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=CHAT_OK)

    fast = DEPLOYMENT.model_copy(update={"timeout_s": 0.05})
    upstream = Upstream(stall, httpx.Response(200, content=CHAT_OK))
    sleep = RecordingSleep()

    async def scenario() -> CallOutcome:
        sender = HttpSender.with_transport(httpx.MockTransport(upstream))
        try:
            return await call_upstream(sender, ADAPTER, fast, BODY, None, SETTINGS,
                                       random.Random(1), sleep=sleep)
        finally:
            await sender.aclose()

    outcome = asyncio.run(scenario())
    assert outcome.ok
    assert codes(outcome) == ["upstream_timeout", "ok"]
    assert outcome.attempts[0].duration_ms < 1000


# --- HttpSender ------------------------------------------------------------------------------


def test_sender_returns_status_lowercase_headers_and_bytes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, content=b"\x00raw", headers={"X-Request-ID": "req_1"})

    async def scenario() -> None:
        sender = HttpSender.with_transport(httpx.MockTransport(handler))
        request = HttpRequest("POST", "https://llm.example.test/v1/x", {}, b"{}")
        reply = await sender.send(request, 1.0)
        await sender.aclose()
        assert reply.status == 201
        assert reply.headers["x-request-id"] == "req_1"
        assert reply.content == b"\x00raw"
        assert reply.elapsed_ms >= 0.0

    asyncio.run(scenario())


def test_sender_is_bound_to_its_first_loop() -> None:
    sender = HttpSender.with_transport(httpx.MockTransport(lambda r: httpx.Response(204)))
    request = HttpRequest("GET", "https://llm.example.test/", {}, b"")
    assert asyncio.run(sender.send(request, 1.0)).status == 204
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(sender.send(request, 1.0))


def test_sender_rejects_unknown_settings() -> None:
    with pytest.raises(ValueError, match="transport"):
        HttpSender("requests", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_connections"):
        HttpSender("httpx", 0)
    assert HttpSender("aiohttp", 8).transport == "aiohttp"


def chained(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "expected", "retryable"),
    [
        (httpx.ReadTimeout("timed out"), UpstreamTimeout, True),
        (TimeoutError(), UpstreamTimeout, True),
        (httpx.ConnectError("refused"), UpstreamConnectionError, True),
        (httpx.RemoteProtocolError("peer closed"), UpstreamConnectionError, True),
        (ConnectionResetError(104, "Connection reset by peer"), UpstreamConnectionError, True),
        (aiohttp.ServerDisconnectedError(), UpstreamConnectionError, True),
        # httpx-aiohttp reports a dropped connection as ConnectTimeout; the cause wins.
        (chained(httpx.ConnectTimeout("x"), aiohttp.ServerDisconnectedError()),
         UpstreamConnectionError, True),
        (chained(httpx.ReadTimeout("x"), aiohttp.SocketTimeoutError()), UpstreamTimeout, True),
        (httpx.DecodingError("bad gzip"), UpstreamBadResponse, True),
        (httpx.UnsupportedProtocol("ftp://h/?key=secret"), UpstreamError, False),
        (httpx.LocalProtocolError(f"Illegal header value b'Bearer {KEY}\\n'"), UpstreamError,
         False),
        (ValueError("Forbidden control character detected in headers"), UpstreamError, False),
    ],
)
def test_transport_error_mapping(exc: Exception, expected: type[UpstreamError],
                                 retryable: bool) -> None:
    error = transport_error(exc, 2.0)
    assert type(error) is expected
    assert error.retryable is retryable
    assert KEY not in error.message
    assert "secret" not in error.message
