"""The Gemini adapter against hand-written generateContent/batchEmbedContents examples."""

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
from broker.simulator import gemini_format
from broker.simulator.openai_format import ErrorKind, InvalidRequestError
from workers.providers.base import HttpReply, get_adapter
from workers.providers.gemini import GeminiAdapter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
ADAPTER = GeminiAdapter()
BASE = "https://generativelanguage.test/v1beta"
DEPLOYMENT = Deployment(name="gemini", provider="gemini", base_url=BASE + "/",
                        model="gemini-2.0-flash")
EMBEDDER = Deployment(name="gemini-embed", provider="gemini", base_url=BASE,
                      model="models/text-embedding-004")
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def reply(status: int, content: bytes | dict[str, Any],
          headers: dict[str, str] | None = None) -> HttpReply:
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return HttpReply(status=status, headers=headers or {}, content=raw)


def chat(text: str = "hi", **params: Any) -> JobBody:
    return JobBody(model="gemini", messages=[ChatMessage(role="user", content=text)], **params)


def weather_conversation(**params: Any) -> JobBody:
    """System and developer prompts, a tool round trip, then a question with an image."""
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather",
                         "arguments": json.dumps({"city": "Paris", "unit": "celsius"})}}
    question = [{"type": "text", "text": "And should I take an umbrella?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    messages = [
        ChatMessage(role="system", content="You are a weather assistant."),
        ChatMessage(role="developer", content="Answer in one sentence."),
        ChatMessage(role="user", content="What is the weather in Paris?"),
        ChatMessage(role="assistant", content="Let me check.", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="call_1",
                    content='{"temperature": 21, "sky": "clear"}'),
        ChatMessage(role="user", content=question),
    ]
    return JobBody(model="gemini", messages=messages, **params)


# --- build_request ---------------------------------------------------------------------------


def test_chat_request_matches_the_documented_shape() -> None:
    body = weather_conversation(
        max_tokens=300, temperature=1.4, top_p=0.9, stop="END", seed=7,
        response_format={"type": "json_object"}, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    request = ADAPTER.build_request(DEPLOYMENT, body, "AIzaTestKey\n")
    assert request.url == f"{BASE}/models/gemini-2.0-flash:generateContent"
    assert request.headers["x-goog-api-key"] == "AIzaTestKey"
    assert "key=" not in request.url  # the key never travels in the URL
    assert json.loads(request.body) == fixture("request_chat.json")


def test_embeddings_request_is_one_batch_request_per_input() -> None:
    body = JobBody(model="embed", input=["first text", "second text"], dimensions=256)
    request = ADAPTER.build_request(EMBEDDER, body, None)
    assert request.url == f"{BASE}/models/text-embedding-004:batchEmbedContents"
    assert "x-goog-api-key" not in request.headers
    assert json.loads(request.body) == fixture("request_embeddings.json")
    single = json.loads(ADAPTER.build_request(EMBEDDER, JobBody(model="e", input="one"), None).body)
    assert single == {"requests": [{"model": "models/text-embedding-004",
                                    "content": {"parts": [{"text": "one"}]}}]}


def test_embeddings_over_the_api_limit_are_refused_with_the_reason() -> None:
    at_limit = JobBody(model="e", input=[f"text {i}" for i in range(100)])
    assert len(json.loads(ADAPTER.build_request(EMBEDDER, at_limit, None).body)["requests"]) == 100
    over = JobBody(model="e", input=[f"text {i}" for i in range(101)])
    with pytest.raises(UpstreamRejected) as refused:
        ADAPTER.build_request(EMBEDDER, over, None)
    assert refused.value.code == "upstream_rejected" and not refused.value.retryable
    assert "at most 100 inputs" in refused.value.message and "101" in refused.value.message


def test_minimal_request_and_default_max_tokens() -> None:
    assert json.loads(ADAPTER.build_request(DEPLOYMENT, chat("hello"), None).body) == {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    capped = DEPLOYMENT.model_copy(update={"default_max_tokens": 64})
    sent = json.loads(ADAPTER.build_request(capped, chat("hello"), None).body)
    assert sent["generationConfig"] == {"maxOutputTokens": 64}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
     ({"type": "function", "function": {"name": "f"}},
      {"mode": "ANY", "allowedFunctionNames": ["f"]})],
)
def test_tool_choice_mapping(choice: str | dict[str, Any], expected: dict[str, Any]) -> None:
    sent = json.loads(ADAPTER.build_request(DEPLOYMENT, chat(tools=[WEATHER_TOOL],
                                                             tool_choice=choice), None).body)
    assert sent["toolConfig"] == {"functionCallingConfig": expected}


def test_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    body = chat(response_format={"type": "json_schema",
                                 "json_schema": {"name": "a", "schema": schema}})
    config = json.loads(ADAPTER.build_request(DEPLOYMENT, body, None).body)["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_remote_image_becomes_file_data() -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://img.test/cat.png"}}]
    body = JobBody(model="g", messages=[ChatMessage(role="user", content=content)])
    sent = json.loads(ADAPTER.build_request(DEPLOYMENT, body, None).body)
    assert sent["contents"][0]["parts"] == [
        {"fileData": {"mimeType": "image/png", "fileUri": "https://img.test/cat.png"}}]


# --- parse_reply -----------------------------------------------------------------------------


def test_text_reply_skips_thoughts_and_counts_them_as_output() -> None:
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, fixture("generate_content.json")))
    response = parsed.response
    assert response["object"] == "chat.completion"
    assert response["id"] == "mKjWaJ3mEu2hz7IP0oTzyQY"
    assert response["model"] == "gemini-2.5-flash"
    choice = response["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant",
                                 "content": "No umbrella needed: the sky over Paris is clear."}
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens,
            parsed.usage.total_tokens) == (412, 15 + 40, 467)
    assert response["usage"]["prompt_tokens_details"] == {"cached_tokens": 256}
    assert response["usage"]["completion_tokens_details"] == {"reasoning_tokens": 40}


def test_function_calls_become_tool_calls_with_distinct_ids() -> None:
    content = reply(200, fixture("generate_content_function_call.json"))
    choice = ADAPTER.parse_reply(DEPLOYMENT, chat(), content).response["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris", "unit": "celsius"}, {"city": "Lyon"}]
    assert {c["function"]["name"] for c in calls} == {"get_weather"}
    assert len({c["id"] for c in calls}) == 2 and all(c["type"] == "function" for c in calls)


@pytest.mark.parametrize(
    ("name", "finish_reason", "content"),
    [("generate_content_max_tokens.json", "length", "The sky over Paris is"),
     ("generate_content_safety.json", "content_filter", None)],
)
def test_finish_reasons(name: str, finish_reason: str, content: str | None) -> None:
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, fixture(name)))
    choice = parsed.response["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == (finish_reason, content)
    assert parsed.usage is not None and parsed.usage.prompt_tokens > 0


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
     ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
     ("OTHER", "stop"), ("FINISH_REASON_UNSPECIFIED", "stop")],
)
def test_other_finish_reasons(reason: str, expected: str) -> None:
    data = fixture("generate_content_max_tokens.json")
    data["candidates"][0]["finishReason"] = reason
    choice = ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, data)).response["choices"][0]
    assert choice["finish_reason"] == expected


def test_blocked_prompt_is_a_clear_non_retryable_error() -> None:
    with pytest.raises(UpstreamRejected) as caught:
        ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, fixture("prompt_blocked.json")))
    assert "PROHIBITED_CONTENT" in caught.value.message
    assert caught.value.detail == "content_filter"
    assert not caught.value.retryable


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"usageMetadata": {}}'])
def test_unreadable_chat_reply_is_a_bad_response(content: bytes) -> None:
    with pytest.raises(UpstreamBadResponse):
        ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, content))


def test_embeddings_reply_becomes_an_openai_list_without_usage() -> None:
    body = JobBody(model="embed", input=["first text", "second text"])
    parsed = ADAPTER.parse_reply(EMBEDDER, body, reply(200, fixture("batch_embed_contents.json")))
    assert parsed.usage is None  # the broker counts the input tokens itself
    assert parsed.response["object"] == "list"
    assert parsed.response["model"] == "text-embedding-004"
    data = parsed.response["data"]
    assert [item["index"] for item in data] == [0, 1]
    assert data[1]["embedding"][0] == pytest.approx(-0.021093095)
    with pytest.raises(UpstreamBadResponse):
        ADAPTER.parse_reply(EMBEDDER, body, reply(200, {"embedding": {"values": [1.0]}}))


# --- map_error -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error_class"),
    [("error_invalid_argument.json", UpstreamRejected),
     ("error_api_key_invalid.json", UpstreamRejected),
     ("error_failed_precondition.json", UpstreamRejected),
     ("error_permission_denied.json", UpstreamRejected),
     ("error_not_found.json", UpstreamRejected),
     ("error_resource_exhausted.json", UpstreamRateLimited),
     ("error_internal.json", UpstreamUnavailable),
     ("error_unavailable.json", UpstreamUnavailable),
     ("error_deadline_exceeded.json", UpstreamTimeout)],
)
def test_every_documented_status(name: str, error_class: type[UpstreamError]) -> None:
    body = fixture(name)["error"]
    error = ADAPTER.map_error(reply(body["code"], fixture(name)))
    assert type(error) is error_class
    assert error.retryable is (error_class is not UpstreamRejected)
    assert (error.status, error.detail, error.message) == (body["code"], body["status"],
                                                          body["message"])


def test_retry_info_gives_the_wait_and_the_header_is_a_fallback() -> None:
    exhausted = ADAPTER.map_error(reply(429, fixture("error_resource_exhausted.json"),
                                        {"retry-after": "3"}))
    assert exhausted.retry_after == 37.0
    overloaded = ADAPTER.map_error(reply(503, fixture("error_unavailable.json"),
                                         {"retry-after": "5"}))
    assert overloaded.retry_after == 5.0


def test_key_echoed_in_an_error_is_redacted() -> None:
    key = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"
    body = {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                      "message": f"API key {key} is not valid for this project."}}
    error = ADAPTER.map_error(reply(400, body))
    assert key not in error.message and "[redacted]" in error.message


def test_error_without_a_google_body_falls_back_to_the_status() -> None:
    assert isinstance(ADAPTER.map_error(reply(502, b"<html>bad gateway</html>")),
                      UpstreamUnavailable)
    assert isinstance(ADAPTER.map_error(reply(429, b"{}")), UpstreamRateLimited)


def test_no_rate_limit_headers_and_registered() -> None:
    assert ADAPTER.rate_limits({"x-ratelimit-remaining-requests": "5"}).remaining_requests is None
    assert isinstance(get_adapter("gemini"), GeminiAdapter)


# --- the simulator's Gemini format speaks what the adapter expects ---------------------------


def test_simulator_round_trip_counts_the_usage_it_reports() -> None:
    body = weather_conversation(max_tokens=6)
    request = ADAPTER.build_request(DEPLOYMENT, body, None)
    call = gemini_format.parse_generate(request.body, "gemini-2.0-flash")
    answer, served = gemini_format.respond_generate(call, 16)
    parsed = ADAPTER.parse_reply(DEPLOYMENT, body, reply(200, answer))
    assert served == 6 and parsed.response["choices"][0]["finish_reason"] == "length"
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (
        call.prompt_tokens, served)
    assert "Answer in one sentence." in call.text


def test_simulator_answers_a_forced_function() -> None:
    body = chat(tools=[WEATHER_TOOL], tool_choice="required")
    call = gemini_format.parse_generate(ADAPTER.build_request(DEPLOYMENT, body, None).body, "g")
    answer, _ = gemini_format.respond_generate(call, 4)
    choice = ADAPTER.parse_reply(DEPLOYMENT, body, reply(200, answer)).response["choices"][0]
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_simulator_embeddings_round_trip() -> None:
    body = JobBody(model="embed", input=["one two", "three"], dimensions=12)
    request = ADAPTER.build_request(EMBEDDER, body, None)
    call = gemini_format.parse_batch_embed(request.body, "text-embedding-004")
    answer, _ = gemini_format.respond_batch_embed(call, 0)
    data = ADAPTER.parse_reply(EMBEDDER, body, reply(200, answer)).response["data"]
    assert [len(item["embedding"]) for item in data] == [12, 12]
    assert call.prompt_tokens > 0
    with pytest.raises(InvalidRequestError, match="models/other"):
        gemini_format.parse_batch_embed(request.body, "other")


@pytest.mark.parametrize(
    ("kind", "status", "error_class"),
    [("invalid_request", 400, UpstreamRejected), ("invalid_api_key", 400, UpstreamRejected),
     ("rate_limit", 429, UpstreamRateLimited), ("capacity", 429, UpstreamRateLimited),
     ("server_error", 500, UpstreamUnavailable), ("unavailable", 503, UpstreamUnavailable),
     ("timeout", 504, UpstreamTimeout)],
)
def test_simulator_errors_map_like_the_real_ones(kind: ErrorKind, status: int,
                                                 error_class: type[UpstreamError]) -> None:
    got_status, body = gemini_format.error(kind)
    assert got_status == status == body["error"]["code"]
    assert type(ADAPTER.map_error(reply(status, body))) is error_class


def test_simulator_key_check() -> None:
    check = gemini_format.check_api_key
    assert check({"x-goog-api-key": "AIza-right"}, "AIza-right") is None
    missing = check({}, "AIza-right")
    assert gemini_format.error("invalid_api_key", missing)[0] == 403
    wrong = check({"x-goog-api-key": "AIza-wrong-98765"}, "AIza-right")
    assert wrong is not None and "98765" not in wrong
