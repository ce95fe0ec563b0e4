"""The Anthropic adapter against hand-written Messages API examples, and the simulator's format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker.catalog import Deployment
from broker.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from broker.schemas import ChatMessage, JobBody
from broker.simulator import anthropic_format
from broker.simulator.openai_format import ErrorKind, InvalidRequestError
from workers.providers.anthropic import (
    API_VERSION,
    DEFAULT_MAX_TOKENS,
    AnthropicAdapter,
    parse_rate_limits,
)
from workers.providers.base import HttpReply, get_adapter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic"
ADAPTER = AnthropicAdapter()
DEPLOYMENT = Deployment(name="claude", provider="anthropic", base_url="https://claude.test/v1/",
                        model="claude-sonnet-4-5")
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string"},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def reply(status: int, content: bytes | dict[str, Any],
          headers: dict[str, str] | None = None) -> HttpReply:
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return HttpReply(status=status, headers=headers or {}, content=raw)


def weather_conversation(**params: Any) -> JobBody:
    """A conversation with a system prompt, a tool round trip and a follow-up question."""
    call = {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
            "function": {"name": "get_weather",
                         "arguments": json.dumps({"city": "Paris", "unit": "celsius"})}}
    messages = [
        ChatMessage(role="system", content="You are a weather assistant."),
        ChatMessage(role="user", content="What is the weather in Paris?"),
        ChatMessage(role="assistant", content="Let me check.", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id=call["id"],
                    content='{"temperature": 21, "sky": "clear"}'),
        ChatMessage(role="developer", content="Answer in one sentence."),
        ChatMessage(role="user", content=[{"type": "text",
                                           "text": "And should I take an umbrella?"}]),
    ]
    return JobBody(model="claude", messages=messages, **params)


def chat(text: str = "hi", **params: Any) -> JobBody:
    return JobBody(model="claude", messages=[ChatMessage(role="user", content=text)], **params)


# --- build_request ---------------------------------------------------------------------------


def test_request_matches_the_documented_shape() -> None:
    body = weather_conversation(max_tokens=300, temperature=1.4, top_p=0.9, stop="END",
                                tools=[WEATHER_TOOL], tool_choice="auto", user="user-1234")
    request = ADAPTER.build_request(DEPLOYMENT, body, "sk-ant-test-key\n")
    assert request.method == "POST"
    assert request.url == "https://claude.test/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test-key"
    assert request.headers["anthropic-version"] == API_VERSION == "2023-06-01"
    assert "Authorization" not in request.headers and "authorization" not in request.headers
    assert json.loads(request.body) == fixture("request_chat.json")


def test_no_key_sends_no_key_header() -> None:
    request = ADAPTER.build_request(DEPLOYMENT, chat(), None)
    assert "x-api-key" not in request.headers
    assert request.headers["anthropic-version"] == API_VERSION


@pytest.mark.parametrize(
    ("params", "default", "expected"),
    [
        ({"max_tokens": 50}, 999, 50),
        ({"max_tokens": 50, "max_completion_tokens": 70}, None, 70),
        ({}, 999, 999),
        ({}, None, DEFAULT_MAX_TOKENS),
    ],
)
def test_max_tokens_is_always_sent(params: dict[str, Any], default: int | None,
                                   expected: int) -> None:
    deployment = DEPLOYMENT.model_copy(update={"default_max_tokens": default})
    sent = json.loads(ADAPTER.build_request(deployment, chat(**params), None).body)
    assert sent["max_tokens"] == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}},
         {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice_mapping(choice: str | dict[str, Any], expected: dict[str, str]) -> None:
    body = chat(tools=[WEATHER_TOOL], tool_choice=choice)
    assert json.loads(ADAPTER.build_request(DEPLOYMENT, body, None).body)["tool_choice"] == expected


def test_image_parts_become_image_blocks() -> None:
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
               {"type": "image_url", "image_url": {"url": "https://img.test/cat.jpg"}}]
    body = JobBody(model="claude", messages=[ChatMessage(role="user", content=content)])
    sent = json.loads(ADAPTER.build_request(DEPLOYMENT, body, None).body)
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://img.test/cat.jpg"}},
    ]


def test_minimal_request_has_no_optional_fields() -> None:
    sent = json.loads(ADAPTER.build_request(DEPLOYMENT, chat("hello"), None).body)
    assert sent == {"model": "claude-sonnet-4-5", "max_tokens": DEFAULT_MAX_TOKENS,
                    "messages": [{"role": "user", "content": "hello"}]}


def test_text_only_turns_are_plain_strings_and_mixed_turns_stay_blocks() -> None:
    parts = [{"type": "text", "text": "one, "}, {"type": "text", "text": "two"}]
    body = JobBody(model="claude", messages=[ChatMessage(role="user", content=parts),
                                             ChatMessage(role="assistant", content="three")])
    sent = json.loads(ADAPTER.build_request(DEPLOYMENT, body, None).body)
    assert sent["messages"] == [{"role": "user", "content": "one, two"},
                                {"role": "assistant", "content": "three"}]
    mixed = json.loads(ADAPTER.build_request(DEPLOYMENT, weather_conversation(), None).body)
    assert [type(turn["content"]) for turn in mixed["messages"]] == [str, list, list]


def test_simulator_accepts_string_and_block_content() -> None:
    for content in ("hello there", [{"type": "text", "text": "hello there"}]):
        raw = json.dumps({"model": "m", "max_tokens": 5,
                          "messages": [{"role": "user", "content": content}]}).encode()
        assert "hello there" in anthropic_format.parse_messages(raw).text


def test_embeddings_are_refused_before_sending() -> None:
    with pytest.raises(UpstreamRejected, match="no embeddings"):
        ADAPTER.build_request(DEPLOYMENT, JobBody(model="claude", input="text"), None)


# --- parse_reply -----------------------------------------------------------------------------


def test_text_reply_becomes_a_chat_completion_with_cache_tokens_in_prompt() -> None:
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, fixture("message.json")))
    response = parsed.response
    assert response["object"] == "chat.completion"
    assert response["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert response["model"] == "claude-sonnet-4-5-20250929"
    choice = response["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant",
                                 "content": "No umbrella needed: the sky over Paris is clear."}
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens,
            parsed.usage.total_tokens) == (412 + 1024 + 2048, 15, 3499)
    assert response["usage"]["prompt_tokens_details"] == {"cached_tokens": 2048}


def test_tool_use_reply_becomes_tool_calls() -> None:
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, fixture("message_tool_use.json")))
    choice = parsed.response["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll look up the weather in Paris."
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert parsed.usage is not None and parsed.usage.total_tokens == 384 + 58


def test_thinking_blocks_are_left_out_and_content_is_null_beside_tool_calls() -> None:
    content = reply(200, fixture("message_thinking_only_tool.json"))
    message = ADAPTER.parse_reply(DEPLOYMENT, chat(), content).response["choices"][0]["message"]
    assert message["content"] is None
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather"]
    assert "thinking" not in json.dumps(message)


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "stop"),
     ("something_new", "stop")],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    data = {**fixture("message.json"), "stop_reason": stop_reason}
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, data))
    assert parsed.response["choices"][0]["finish_reason"] == finish_reason


@pytest.mark.parametrize("content", [b"<html>oops</html>", b'{"type": "message"}', b"[]"])
def test_unreadable_reply_is_a_retryable_bad_response(content: bytes) -> None:
    with pytest.raises(UpstreamBadResponse) as caught:
        ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, content))
    assert caught.value.retryable


# --- map_error -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "error_class", "retryable"),
    [
        (400, "error_invalid_request.json", UpstreamRejected, False),
        (401, "error_authentication.json", UpstreamRejected, False),
        (402, "error_billing.json", UpstreamRejected, False),
        (403, "error_permission.json", UpstreamRejected, False),
        (404, "error_not_found.json", UpstreamRejected, False),
        (413, "error_request_too_large.json", UpstreamRejected, False),
        (429, "error_rate_limit.json", UpstreamRateLimited, True),
        (429, "error_spend_limit.json", UpstreamRejected, False),
        (500, "error_api.json", UpstreamUnavailable, True),
        (504, "error_timeout.json", UpstreamTimeout, True),
        (529, "error_overloaded.json", UpstreamUnavailable, True),
    ],
)
def test_every_documented_error_type(status: int, name: str, error_class: type[UpstreamError],
                                     retryable: bool) -> None:
    body = fixture(name)
    error = ADAPTER.map_error(reply(status, body))
    assert type(error) is error_class
    assert error.retryable is retryable
    assert error.status == status
    assert error.message == body["error"]["message"]
    assert error.detail in (body["error"]["type"], "enforced_spend_limit_reached")


@pytest.mark.parametrize(("status", "name"), [(429, "error_rate_limit.json"),
                                              (529, "error_overloaded.json")])
def test_retry_after_is_honoured_on_retryable_errors(status: int, name: str) -> None:
    error = ADAPTER.map_error(reply(status, fixture(name), {"retry-after": "7"}))
    assert error.retry_after == 7.0


def test_rejections_carry_no_retry_after() -> None:
    error = ADAPTER.map_error(reply(401, fixture("error_authentication.json"),
                                    {"retry-after": "7"}))
    assert error.retry_after is None


def test_error_without_anthropic_body_falls_back_to_the_status() -> None:
    gateway = ADAPTER.map_error(reply(502, b"<html>Bad Gateway</html>"))
    assert isinstance(gateway, UpstreamUnavailable) and gateway.retryable
    odd = ADAPTER.map_error(reply(418, b'{"type": "error", "error": {"type": "teapot_error"}}'))
    assert isinstance(odd, UpstreamRejected) and not odd.retryable


def test_rate_limit_headers_are_read_with_rfc3339_resets() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "1000",
        "anthropic-ratelimit-requests-remaining": "999",
        "anthropic-ratelimit-requests-reset": "2025-08-21T12:41:00Z",
        "anthropic-ratelimit-tokens-limit": "96000",
        "anthropic-ratelimit-tokens-remaining": "95000",
        "anthropic-ratelimit-tokens-reset": "2025-08-21T12:40:30Z",
    }
    now = 1755780000.0  # 2025-08-21T12:40:00Z
    signal = parse_rate_limits(headers, now=now)
    assert (signal.limit_requests, signal.remaining_requests) == (1000, 999)
    assert (signal.limit_tokens, signal.remaining_tokens) == (96000, 95000)
    assert signal.reset_requests_s == pytest.approx(60.0)
    assert signal.reset_tokens_s == pytest.approx(30.0)
    assert ADAPTER.rate_limits({"content-type": "application/json"}).remaining_tokens is None


def test_registered_under_its_name() -> None:
    assert isinstance(get_adapter("anthropic"), AnthropicAdapter)


# --- the simulator's Anthropic format speaks what the adapter expects ------------------------


def test_simulator_round_trip_counts_the_usage_it_reports() -> None:
    request = ADAPTER.build_request(DEPLOYMENT, weather_conversation(max_tokens=5), None)
    call = anthropic_format.parse_messages(request.body)
    body, served = anthropic_format.respond_messages(call, 16)
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, body))
    assert served == 5
    assert parsed.response["choices"][0]["finish_reason"] == "length"
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (
        call.prompt_tokens, served)
    assert "You are a weather assistant." in call.text


def test_simulator_answers_a_forced_tool_with_tool_use() -> None:
    body = chat(tools=[WEATHER_TOOL], tool_choice="required")
    call = anthropic_format.parse_messages(ADAPTER.build_request(DEPLOYMENT, body, None).body)
    answer, _ = anthropic_format.respond_messages(call, 4)
    choice = ADAPTER.parse_reply(DEPLOYMENT, body, reply(200, answer)).response["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("raw", [b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}',
                                 b'{"model": "m", "max_tokens": 5, "messages": []}',
                                 b'{"model": "m", "max_tokens": 5, '
                                 b'"messages": [{"role": "system", "content": "x"}]}'])
def test_simulator_rejects_what_the_api_rejects(raw: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        anthropic_format.parse_messages(raw)


@pytest.mark.parametrize(
    ("kind", "status", "error_class"),
    [("invalid_request", 400, UpstreamRejected), ("invalid_api_key", 401, UpstreamRejected),
     ("rate_limit", 429, UpstreamRateLimited), ("capacity", 429, UpstreamRateLimited),
     ("server_error", 500, UpstreamUnavailable), ("unavailable", 529, UpstreamUnavailable),
     ("timeout", 504, UpstreamTimeout)],
)
def test_simulator_errors_map_like_the_real_ones(kind: ErrorKind, status: int,
                                                 error_class: type[UpstreamError]) -> None:
    got_status, body = anthropic_format.error(kind)
    assert got_status == status
    assert body["type"] == "error" and body["request_id"].startswith("req_")
    assert type(ADAPTER.map_error(reply(status, body))) is error_class


def test_simulator_key_check_never_echoes_the_key() -> None:
    check = anthropic_format.check_api_key
    assert check({"x-api-key": "sk-ant-right"}, "sk-ant-right") is None
    assert check({}, "sk-ant-right") == "x-api-key header is required"
    wrong = check({"x-api-key": "sk-ant-wrong-123456"}, "sk-ant-right")
    assert wrong is not None and "123456" not in wrong
