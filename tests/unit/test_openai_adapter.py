"""The OpenAI-compatible adapter: request shape, reply parsing, error mapping, header parsing."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from broker.catalog import Deployment
from broker.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from broker.schemas import ChatMessage, JobBody, JobRequest
from workers.providers.base import HttpReply, RateLimitSignal, get_adapter, registered_names
from workers.providers.openai_compat import (
    MAX_MESSAGE_CHARS,
    OpenAICompatibleAdapter,
    parse_duration,
    parse_rate_limits,
    parse_retry_after,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai"
ADAPTER = OpenAICompatibleAdapter("openai")
DEPLOYMENT = Deployment(
    name="gpt-main", base_url="https://llm.example.test/v1/", model="gpt-4o-mini-2024-07-18"
)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def chat_body(**params: Any) -> JobBody:
    return JobBody(
        model="gpt-4o-mini",
        messages=[ChatMessage(role="system", content="Be brief."),
                  ChatMessage(role="user", content="Why a queue?")],
        **params,
    )


def embeddings_body() -> JobBody:
    return JobBody(model="embed-small", input=["first text", "second text"], dimensions=256)


def reply(status: int, content: bytes, headers: dict[str, str] | None = None) -> HttpReply:
    return HttpReply(status=status, headers=headers or {}, content=content)


# --- build_request ---------------------------------------------------------------------------


def test_chat_request_targets_chat_path_and_replaces_model() -> None:
    request = ADAPTER.build_request(DEPLOYMENT, chat_body(temperature=0.2), "sk-test")
    sent = json.loads(request.body)
    assert request.method == "POST"
    assert request.url == "https://llm.example.test/v1/chat/completions"
    assert request.headers["Content-Type"] == "application/json"
    assert sent == {
        "model": "gpt-4o-mini-2024-07-18",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Why a queue?"}],
        "temperature": 0.2,
    }


def test_embeddings_request_targets_embeddings_path() -> None:
    request = ADAPTER.build_request(DEPLOYMENT, embeddings_body(), None)
    sent = json.loads(request.body)
    assert request.url == "https://llm.example.test/v1/embeddings"
    assert sent == {"model": "gpt-4o-mini-2024-07-18", "input": ["first text", "second text"],
                    "dimensions": 256}


def test_request_body_keeps_non_ascii_text_as_utf8() -> None:
    body = JobBody(model="m", messages=[ChatMessage(role="user", content="café ☕")])
    request = ADAPTER.build_request(DEPLOYMENT, body, None)
    assert "café ☕".encode() in request.body
    assert json.loads(request.body)["messages"][0]["content"] == "café ☕"


def test_job_request_sends_only_openai_fields() -> None:
    job = JobRequest(model="gpt-4o-mini", messages=[ChatMessage(role="user", content="hi")],
                     api_key=SecretStr("tenant-key"), metadata={"team": "search"},
                     idempotency_key="abc")
    request = ADAPTER.build_request(DEPLOYMENT, job, None)
    sent = json.loads(request.body)
    assert set(sent) == {"model", "messages"}
    assert b"tenant-key" not in request.body


def test_auth_header_present_only_with_a_key() -> None:
    with_key = ADAPTER.build_request(DEPLOYMENT, chat_body(), "sk-test\n")
    assert with_key.headers["Authorization"] == "Bearer sk-test"
    for key in (None, ""):
        without = ADAPTER.build_request(DEPLOYMENT, chat_body(), key)
        assert "Authorization" not in without.headers
    # The shared header dict must not pick up a key from an earlier request.
    assert "Authorization" not in ADAPTER.build_request(DEPLOYMENT, chat_body(), None).headers


def test_custom_paths_header_and_empty_scheme() -> None:
    adapter = OpenAICompatibleAdapter("gateway", chat_path="/v2/chat", embeddings_path="/v2/embed",
                                      auth_header="api-key", auth_scheme="")
    chat = adapter.build_request(DEPLOYMENT, chat_body(), "k-123")
    embed = adapter.build_request(DEPLOYMENT, embeddings_body(), "k-123")
    assert chat.url == "https://llm.example.test/v1/v2/chat"
    assert embed.url == "https://llm.example.test/v1/v2/embed"
    assert chat.headers["api-key"] == "k-123"
    assert "Authorization" not in chat.headers


# --- parse_reply -----------------------------------------------------------------------------


def test_parse_chat_reply_keeps_provider_response_and_usage() -> None:
    content = fixture_bytes("chat_completion.json")
    headers = {"x-ratelimit-remaining-requests": "499", "x-ratelimit-reset-requests": "120ms"}
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat_body(), reply(200, content, headers))
    assert parsed.response == json.loads(content)
    assert parsed.response["model"] == "gpt-4o-mini-2024-07-18"
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens,
            parsed.usage.total_tokens) == (24, 12, 36)
    assert not parsed.usage.estimated
    assert parsed.rate_limits.remaining_requests == 499
    assert parsed.rate_limits.reset_requests_s == pytest.approx(0.12)


def test_parse_tool_call_reply_untouched() -> None:
    content = fixture_bytes("chat_tool_calls.json")
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat_body(), reply(200, content))
    message = parsed.response["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"]["name"] == "get_queue_depth"
    assert parsed.usage is not None
    assert parsed.usage.total_tokens == 100
    assert parsed.rate_limits == RateLimitSignal()


def test_parse_embeddings_reply() -> None:
    content = fixture_bytes("embeddings.json")
    parsed = ADAPTER.parse_reply(DEPLOYMENT, embeddings_body(), reply(200, content))
    assert [item["index"] for item in parsed.response["data"]] == [0, 1]
    assert parsed.response["model"] == "text-embedding-3-small"
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens,
            parsed.usage.total_tokens) == (8, 0, 8)


def test_missing_usage_is_none_and_missing_total_is_summed() -> None:
    bare = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant"}}]}).encode()
    assert ADAPTER.parse_reply(DEPLOYMENT, chat_body(), reply(200, bare)).usage is None
    partial = json.dumps({"choices": [], "usage": {"prompt_tokens": 5,
                                                   "completion_tokens": 2}}).encode()
    usage = ADAPTER.parse_reply(DEPLOYMENT, chat_body(), reply(200, partial)).usage
    assert usage is not None
    assert usage.total_tokens == 7


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("chat", b"<html>502 Bad Gateway</html>"),
        ("chat", b""),
        ("chat", b"[1, 2]"),
        ("chat", b'{"object": "chat.completion"}'),
        ("chat", b'{"choices": "none"}'),
        ("embeddings", b'{"object": "list"}'),
        ("embeddings", fixture_bytes("chat_completion.json")),
    ],
)
def test_unreadable_2xx_is_bad_response(kind: str, content: bytes) -> None:
    body = chat_body() if kind == "chat" else embeddings_body()
    with pytest.raises(UpstreamBadResponse) as caught:
        ADAPTER.parse_reply(DEPLOYMENT, body, reply(200, content))
    assert caught.value.retryable
    assert caught.value.status == 200


def test_bad_response_carries_provider_error_message() -> None:
    content = b'{"error": {"message": "model is loading", "code": "loading"}}'
    with pytest.raises(UpstreamBadResponse, match="model is loading"):
        ADAPTER.parse_reply(DEPLOYMENT, chat_body(), reply(200, content))


# --- map_error -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fixture", "expected", "retryable"),
    [
        (400, "error_invalid_request.json", UpstreamRejected, False),
        (401, "error_invalid_request.json", UpstreamRejected, False),
        (403, "error_invalid_request.json", UpstreamRejected, False),
        (404, "error_invalid_request.json", UpstreamRejected, False),
        (408, "error_server.json", UpstreamTimeout, True),
        (422, "error_invalid_request.json", UpstreamRejected, False),
        (429, "error_rate_limit.json", UpstreamRateLimited, True),
        (500, "error_server.json", UpstreamUnavailable, True),
        (501, "error_server.json", UpstreamRejected, False),
        (502, "error_server.json", UpstreamUnavailable, True),
        (503, "error_server.json", UpstreamUnavailable, True),
        (504, "error_server.json", UpstreamUnavailable, True),
        (529, "error_server.json", UpstreamUnavailable, True),
    ],
)
def test_error_mapping_table(
    status: int, fixture: str, expected: type[UpstreamError], retryable: bool
) -> None:
    error = ADAPTER.map_error(reply(status, fixture_bytes(fixture)))
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.status == status
    assert error.message == json.loads(fixture_bytes(fixture))["error"]["message"]


def test_rejected_keeps_provider_message_and_code() -> None:
    error = ADAPTER.map_error(reply(400, fixture_bytes("error_invalid_request.json")))
    assert error.code == "upstream_rejected"
    assert error.message.startswith("Invalid value: 'robot'.")
    assert error.detail == "invalid_value"


def test_echoed_key_is_redacted_from_message() -> None:
    error = ADAPTER.map_error(reply(401, fixture_bytes("error_invalid_api_key.json")))
    assert "sk-proj" not in error.message
    assert "Xy9Q" not in error.message
    assert error.message.startswith("Incorrect API key provided: [redacted]")


def test_long_provider_message_is_truncated() -> None:
    content = json.dumps({"error": {"message": "x" * 5000}}).encode()
    error = ADAPTER.map_error(reply(400, content))
    assert len(error.message) == MAX_MESSAGE_CHARS
    assert error.message.endswith("...")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"error": "model \\"llama3\\" not found"}', 'model "llama3" not found'),
        (b'{"object": "error", "message": "max_tokens is too large", "code": 400}',
         "max_tokens is too large"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b"<html>\n  <body>Bad request</body>\n</html>", "<html> <body>Bad request</body> </html>"),
        (b"", "upstream rejected the request (400)"),
    ],
)
def test_error_message_from_other_compatible_servers(content: bytes, message: str) -> None:
    assert ADAPTER.map_error(reply(400, content)).message == message


def test_redirect_is_not_retryable_and_points_at_base_url() -> None:
    error = ADAPTER.map_error(reply(301, b""))
    assert type(error) is UpstreamError
    assert not error.retryable
    assert "base_url" in error.message


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "1500", "retry-after": "30"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "4"}, 4.0),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_rate_limited_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    error = ADAPTER.map_error(reply(429, fixture_bytes("error_rate_limit.json"), headers))
    assert isinstance(error, UpstreamRateLimited)
    assert error.retry_after == seconds
    assert error.detail == "rate_limit_exceeded"


def test_retry_after_http_date() -> None:
    now = 1_732_612_800.0
    assert parse_retry_after({"retry-after": formatdate(now + 30, usegmt=True)}, now=now) == 30.0
    assert parse_retry_after({"retry-after": formatdate(now - 30, usegmt=True)}, now=now) == 0.0
    headers = {"retry-after": formatdate(time.time() + 120, usegmt=True)}
    error = ADAPTER.map_error(reply(503, fixture_bytes("error_server.json"), headers))
    assert error.retry_after is not None
    assert 115 < error.retry_after <= 120


# --- rate-limit headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0),
        ("59.178s", 59.178), ("12", 12.0), ("250us", 0.00025), ("1m30", None), ("", None),
        ("soon", None), ("-1s", None), ("inf", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_parse_rate_limits_reads_every_header() -> None:
    signal = parse_rate_limits({
        "x-ratelimit-limit-requests": "5000",
        "x-ratelimit-limit-tokens": "160000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-remaining-tokens": "159976",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-reset-tokens": "6m0s",
    })
    assert (signal.remaining_requests, signal.remaining_tokens) == (4999, 159976)
    assert (signal.limit_requests, signal.limit_tokens) == (5000, 160000)
    assert signal.reset_requests_s == pytest.approx(0.012)
    assert signal.reset_tokens_s == 360.0


def test_parse_rate_limits_tolerates_absent_and_odd_values() -> None:
    assert parse_rate_limits({"content-type": "application/json"}) == RateLimitSignal()
    signal = parse_rate_limits({"x-ratelimit-remaining-tokens": "-1",
                                "x-ratelimit-limit-tokens": "lots",
                                "x-ratelimit-remaining-requests": "12.0",
                                "x-ratelimit-reset-tokens": "0"})
    assert signal.remaining_tokens is None
    assert signal.limit_tokens is None
    assert signal.remaining_requests == 12
    assert signal.reset_tokens_s == 0.0


# --- registry --------------------------------------------------------------------------------


def test_openai_presets_are_registered() -> None:
    assert {"openai", "openai-compatible"} <= set(registered_names())
    for name in ("openai", "openai-compatible"):
        adapter = get_adapter(name)
        assert isinstance(adapter, OpenAICompatibleAdapter)
        assert adapter.name == name
