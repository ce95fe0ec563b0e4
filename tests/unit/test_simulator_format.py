"""Pure tests of the simulated provider's wire format, settings and dice."""

from __future__ import annotations

import base64
import json
import math
import random
import struct
from typing import Any

import pytest

from broker.simulator import openai_format as fmt
from broker.simulator.behaviour import Behaviour, ConcurrencyGate, Outcome, parse_outcome
from broker.simulator.settings import LatencyDistribution, SimSettings
from broker.tokens import count_chat, count_inputs, count_text, encoding_name_for_model


def _raw(body: Any) -> bytes:
    return json.dumps(body).encode()


def _chat(**extra: Any) -> bytes:
    return _raw({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **extra})


# --- request validation --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b""])
def test_body_must_be_a_json_object(raw: bytes) -> None:
    with pytest.raises(fmt.InvalidRequestError) as caught:
        fmt.parse_chat(raw)
    assert caught.value.param is None
    status, body = fmt.error("invalid_request", caught.value.message, caught.value.param)
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == caught.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "gpt-4o"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": "hello"}, "messages"),
        ({"model": "gpt-4o", "messages": [{"content": "no role"}]}, "messages[0]"),
        ({"model": "gpt-4o", "messages": [{"role": "user"}], "max_tokens": 0}, "max_tokens"),
        ({"model": "gpt-4o", "messages": [{"role": "user"}], "max_tokens": "5"}, "max_tokens"),
        ({"model": "gpt-4o", "messages": [{"role": "user"}], "max_tokens": True}, "max_tokens"),
        ({"model": "gpt-4o", "messages": [{"role": "user"}], "stream": True}, "stream"),
    ],
)
def test_chat_rejections_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(fmt.InvalidRequestError) as caught:
        fmt.parse_chat(_raw(body))
    assert caught.value.param == param
    assert fmt.error("invalid_request", caught.value.message, param)[1]["error"]["param"] == param


def test_chat_counts_prompt_with_the_models_encoding() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Tell me"}, {"type": "image"}]},
        {"role": "user", "name": "bob", "content": "about tokens."},
    ]
    for model in ("gpt-4o-mini", "gpt-3.5-turbo"):
        call = fmt.parse_chat(_raw({"model": model, "messages": messages}))
        assert call.prompt_tokens == count_chat(messages, encoding_name_for_model(model))
        assert call.text == "You are terse.\nTell me\nabout tokens."
        assert call.body["messages"] == messages
        assert call.max_tokens is None


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert fmt.parse_chat(_chat(max_tokens=9)).max_tokens == 9
    assert fmt.parse_chat(_chat(max_tokens=9, max_completion_tokens=4)).max_tokens == 4


# --- chat responses ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base", "p50k_base"])
def test_filler_text_has_exactly_the_requested_tokens(encoding: str) -> None:
    for tokens in [*range(0, 40), 100, 257, 1000]:
        assert count_text(fmt.filler_text(tokens), encoding) == tokens


@pytest.mark.parametrize(
    ("configured", "cap", "expected"),
    [(16, None, (16, "stop")), (16, 20, (16, "stop")), (16, 16, (16, "stop")),
     (16, 5, (5, "length")), (0, 3, (0, "stop"))],
)
def test_completion_budget(configured: int, cap: int | None, expected: tuple[int, str]) -> None:
    assert fmt.completion_budget(configured, cap) == expected


def test_chat_completion_shape() -> None:
    body = fmt.chat_completion("gpt-4o", 11, 5, "length", completion_id="chatcmpl-x", created=7)
    assert body["id"] == "chatcmpl-x"
    assert body["object"] == "chat.completion"
    assert body["created"] == 7
    assert body["model"] == "gpt-4o"
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "length"
    assert choice["message"]["role"] == "assistant"
    assert count_text(choice["message"]["content"], "o200k_base") == 5
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    assert fmt.new_id("chatcmpl").startswith("chatcmpl-")
    assert fmt.new_id("chatcmpl") != fmt.new_id("chatcmpl")


def test_chat_endpoint_caps_reply_at_max_tokens() -> None:
    body, served = fmt.CHAT.respond(fmt.parse_chat(_chat(max_tokens=3)), 16)
    assert served == 3
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


# --- embeddings ----------------------------------------------------------------------------


def test_embeddings_parse_and_respond() -> None:
    inputs = ["first text", "second"]
    call = fmt.parse_embeddings(_raw({"model": "text-embedding-3-small", "input": inputs}))
    assert call.prompt_tokens == count_inputs(inputs, "cl100k_base")
    assert call.dimensions == fmt.DEFAULT_EMBEDDING_DIMENSIONS == 8
    body, served = fmt.EMBEDDINGS.respond(call, 16)
    assert served == 0
    assert body["object"] == "list"
    assert body["model"] == "text-embedding-3-small"
    assert [item["index"] for item in body["data"]] == [0, 1]
    for item in body["data"]:
        assert item["object"] == "embedding"
        assert len(item["embedding"]) == 8
    tokens = call.prompt_tokens
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_embedding_vectors_are_deterministic_and_unit_length() -> None:
    first = fmt.embedding_vector("hello", 32)
    assert first == fmt.embedding_vector("hello", 32)
    assert first != fmt.embedding_vector("hello!", 32)
    assert math.isclose(sum(value * value for value in first), 1.0, rel_tol=1e-9)


def test_embeddings_base64_decodes_to_the_float_vector() -> None:
    body = fmt.embeddings_response("m", ["abc"], 1, dimensions=4, encoding_format="base64")
    packed = base64.b64decode(body["data"][0]["embedding"])
    decoded = struct.unpack("<4f", packed)
    assert decoded == pytest.approx(fmt.embedding_vector("abc", 4), abs=1e-6)


def test_embeddings_accept_token_arrays() -> None:
    call = fmt.parse_embeddings(_raw({"model": "m", "input": [[1, 2, 3], [4]], "dimensions": 3}))
    assert call.prompt_tokens == 4
    assert call.dimensions == 3
    assert len(call.inputs) == 2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["ok", 3]}, "input"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "m", "input": "x", "dimensions": 99_999}, "dimensions"),
        ({"model": "m", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ],
)
def test_embeddings_rejections(body: dict[str, Any], param: str) -> None:
    with pytest.raises(fmt.InvalidRequestError) as caught:
        fmt.parse_embeddings(_raw(body))
    assert caught.value.param == param


# --- errors and odd bodies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "error_type", "code"),
    [
        ("invalid_api_key", 401, "invalid_request_error", "invalid_api_key"),
        ("rate_limit", 429, "requests", "rate_limit_exceeded"),
        ("capacity", 429, "requests", "rate_limit_exceeded"),
        ("server_error", 500, "server_error", None),
        ("unavailable", 503, "server_error", "service_unavailable"),
        ("timeout", 504, "server_error", "timeout"),
    ],
)
def test_error_bodies(kind: fmt.ErrorKind, status: int, error_type: str, code: str | None) -> None:
    got_status, body = fmt.error(kind)
    assert got_status == status
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == error_type
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert fmt.error(kind, "custom")[1]["error"]["message"] == "custom"


def test_bearer_key_check() -> None:
    expected = "sk-right-key-0000"
    assert fmt.check_bearer({"Authorization": f"Bearer {expected}"}, expected) is None
    assert fmt.check_bearer({"Authorization": f"bearer  {expected} "}, expected) is None
    wrong = "sk-wrong-but-long-key-1234"
    message = fmt.check_bearer({"Authorization": f"Bearer {wrong}"}, expected)
    assert message is not None
    assert wrong not in message
    assert message.endswith("sk-***1234.")
    for headers in ({}, {"Authorization": expected}, {"Authorization": "Basic abc"}):
        assert "didn't provide" in (fmt.check_bearer(headers, expected) or "")


def test_truncated_body_never_parses() -> None:
    body = fmt.chat_completion("gpt-4o", 3, 4)
    raw = fmt.truncated(body)
    assert raw
    with pytest.raises(ValueError):  # noqa: PT011 - json raises a ValueError subclass
        json.loads(raw)


def test_models_list() -> None:
    body = fmt.models_list(["a", "b"], created=5)
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["created"]) for m in body["data"]] == [
        ("a", "model", 5), ("b", "model", 5)
    ]


# --- settings and dice ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "a", "b"),
    [("50", "fixed", 50, 0), ("uniform:20:80", "uniform", 20, 80),
     ("normal:50:10", "normal", 50, 10), ("lognormal:50:0.5", "lognormal", 50, 0.5)],
)
def test_latency_specs_parse(spec: str, kind: str, a: float, b: float) -> None:
    assert LatencyDistribution.parse(spec) == LatencyDistribution(kind, a, b)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec", ["", "fast", "-5", "uniform:80:20", "normal:50", "lognormal:0:1", "gamma:1:2", "nan"]
)
def test_bad_latency_specs_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError, match="latency"):
        SimSettings(latency=spec)


def test_latency_samples_stay_in_range() -> None:
    rng = random.Random(3)
    uniform = LatencyDistribution.parse("uniform:20:80")
    assert all(20 <= uniform.sample_ms(rng) <= 80 for _ in range(500))
    normal = LatencyDistribution.parse("normal:5:50")
    assert all(normal.sample_ms(rng) >= 0 for _ in range(500))
    lognormal = LatencyDistribution.parse("lognormal:50:0.5")
    draws = sorted(lognormal.sample_ms(rng) for _ in range(2001))
    assert 45 < draws[1000] < 55  # the spec's first figure is the median


def test_settings_forbid_unknown_knobs_and_excess_rates() -> None:
    with pytest.raises(ValueError, match="extra"):
        SimSettings.model_validate({"rate_999": 0.1})
    with pytest.raises(ValueError, match="more than 1"):
        SimSettings(rate_429=0.6, rate_500=0.5)


def test_seeded_dice_replay_and_follow_rates() -> None:
    settings = SimSettings(seed=42, rate_429=0.2, rate_500=0.1, rate_malformed=0.1)
    first, second = Behaviour(settings), Behaviour(settings)
    rolls = [first.next_outcome() for _ in range(2000)]
    assert rolls == [second.next_outcome() for _ in range(2000)]
    share = rolls.count(Outcome.RATE_LIMIT) / len(rolls)
    assert 0.15 < share < 0.25
    assert Outcome.UNAVAILABLE not in rolls
    first.reseed()
    assert [first.next_outcome() for _ in range(50)] == rolls[:50]


def test_script_comes_before_the_dice() -> None:
    behaviour = Behaviour(SimSettings(seed=1))
    script = [parse_outcome(x) for x in ["429", "500", "503", "malformed", "timeout", "ok"]]
    assert behaviour.load_script(script) == 6
    assert behaviour.load_script([Outcome.SERVER_ERROR], append=True) == 7
    assert [behaviour.next_outcome() for _ in range(8)] == [*script, Outcome.SERVER_ERROR, "ok"]
    assert parse_outcome("200") is Outcome.OK
    with pytest.raises(ValueError, match="unknown outcome"):
        parse_outcome("418")


def test_concurrency_gate() -> None:
    gate = ConcurrencyGate(2)
    assert [gate.try_enter() for _ in range(3)] == [True, True, False]
    gate.leave()
    assert gate.try_enter()
    unlimited = ConcurrencyGate(0)
    assert all(unlimited.try_enter() for _ in range(100))
    assert unlimited.in_flight == 100
