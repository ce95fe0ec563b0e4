"""OpenAI wire format: request validation and response bodies, as pure functions.

One module per wire format: each exposes ENDPOINTS, the `Endpoint`s the server mounts by path.
A sibling such as anthropic_format or gemini_format builds its own Endpoints (reusing `Call`,
`Endpoint` and `InvalidRequestError` from here) and the server routes to them the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from broker.tokens import count_chat, count_inputs, encoding_name_for_model

JSON = dict[str, Any]
ErrorKind = Literal[
    "invalid_request", "invalid_api_key", "rate_limit", "capacity", "server_error",
    "unavailable", "timeout",
]
DEFAULT_EMBEDDING_DIMENSIONS = 8
MAX_EMBEDDING_DIMENSIONS = 3072
MAX_EMBEDDING_INPUTS = 2048
# In every shipped encoding each word is one token after a space (and "the" also without),
# and the pre-tokenizer splits at spaces, so n words are exactly n tokens.
_FILLER_WORDS = ("the", "quick", "brown", "fox", "leaps", "over", "a", "lazy", "dog")
_COMPACT = (",", ":")


class InvalidRequestError(Exception):
    """A request the provider rejects with 400 before doing any work."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class Call:
    """A validated request: what the server needs to answer, count and log it."""

    model: str
    prompt_tokens: int
    text: str  # the prompt text, so tests can see exactly what reached the provider
    body: JSON
    max_tokens: int | None = None
    inputs: list[str] = field(default_factory=list)
    dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS
    encoding_format: str = "float"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One inference route of a wire format."""

    path: str
    parse: Callable[[bytes], Call]  # raises InvalidRequestError
    # (call, configured completion tokens) -> (body, completion tokens served)
    respond: Callable[[Call, int], tuple[JSON, int]]
    # (kind, message or None for the default, param) -> (status, body)
    error: Callable[[ErrorKind, str | None, str | None], tuple[int, JSON]]
    # (request headers, the accepted key) -> None when authorised, else the 401 message
    check_key: Callable[[Mapping[str, str], str], str | None]


def load_object(raw: bytes) -> JSON:
    """Decode a request body that must be a JSON object."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError(
            "We could not parse the JSON body of your request. Send valid JSON."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return body


def _require_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("You must provide a model parameter.", param="model")
    return model


def _positive_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"Invalid '{name}': must be an integer >= 1.", param=name)
    return value


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def parse_chat(raw: bytes) -> Call:
    """Validate a chat completions request body and count its prompt tokens."""
    body = load_object(raw)
    model = _require_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty array.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequestError(
                f"Invalid 'messages[{index}]': expected an object with a 'role'.",
                param=f"messages[{index}]",
            )
    if body.get("stream"):
        raise InvalidRequestError("Streaming is not supported by this provider.", param="stream")
    cap = _positive_int(body, "max_completion_tokens")
    legacy_cap = _positive_int(body, "max_tokens")
    return Call(
        model=model,
        prompt_tokens=count_chat(messages, encoding_name_for_model(model)),
        text="\n".join(content_text(message.get("content")) for message in messages),
        body=body,
        max_tokens=cap if cap is not None else legacy_cap,
    )


def _embedding_inputs(value: Any) -> tuple[list[str], int | None]:
    """Inputs as strings, plus the token count when they were given as token arrays."""
    bad = InvalidRequestError(
        "'input' must be a non-empty string, array of strings, or array of token arrays.",
        param="input",
    )
    if isinstance(value, str):
        if not value:
            raise bad
        return [value], None
    if not isinstance(value, list) or not value or len(value) > MAX_EMBEDDING_INPUTS:
        raise bad
    if all(isinstance(item, str) and item for item in value):
        return list(value), None
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return [",".join(map(str, value))], len(value)
    if all(isinstance(item, list) and item for item in value) and all(
        isinstance(token, int) and not isinstance(token, bool) for item in value for token in item
    ):
        return [",".join(map(str, item)) for item in value], sum(len(item) for item in value)
    raise bad


def parse_embeddings(raw: bytes) -> Call:
    """Validate an embeddings request body and count its input tokens."""
    body = load_object(raw)
    model = _require_model(body)
    inputs, token_count = _embedding_inputs(body.get("input"))
    dimensions = _positive_int(body, "dimensions") or DEFAULT_EMBEDDING_DIMENSIONS
    if dimensions > MAX_EMBEDDING_DIMENSIONS:
        raise InvalidRequestError(
            f"Invalid 'dimensions': at most {MAX_EMBEDDING_DIMENSIONS}.", param="dimensions"
        )
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise InvalidRequestError(
            "Invalid 'encoding_format': must be 'float' or 'base64'.", param="encoding_format"
        )
    if token_count is None:
        token_count = count_inputs(inputs, encoding_name_for_model(model))
    return Call(
        model=model,
        prompt_tokens=token_count,
        text="\n".join(inputs),
        body=body,
        inputs=inputs,
        dimensions=dimensions,
        encoding_format=encoding_format,
    )


@lru_cache(maxsize=256)
def filler_text(tokens: int) -> str:
    """Deterministic reply text of exactly `tokens` tokens."""
    words = (_FILLER_WORDS[i % len(_FILLER_WORDS)] for i in range(tokens))
    return " ".join(words)


def completion_budget(configured: int, cap: int | None) -> tuple[int, str]:
    """Tokens to serve and the finish_reason: `length` when the request's cap cut the reply."""
    if cap is not None and cap < configured:
        return cap, "length"
    return configured, "stop"


def new_id(prefix: str) -> str:
    """A fresh OpenAI-style object id such as `chatcmpl-…`."""
    return f"{prefix}-{uuid.uuid4().hex}"


def chat_completion(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str = "stop",
    *,
    completion_id: str | None = None,
    created: int | None = None,
) -> JSON:
    """A `chat.completion` object whose reply is `completion_tokens` tokens long."""
    message = {"role": "assistant", "content": filler_text(completion_tokens), "refusal": None}
    return {
        "id": completion_id or new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_simulated",
    }


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit-length vector that depends only on the text and the dimension."""
    digest = hashlib.shake_256(text.encode("utf-8")).digest(2 * dimensions)
    raw = [value / 32767.5 - 1.0 for value in struct.unpack(f"<{dimensions}H", digest)]
    norm = sum(value * value for value in raw) ** 0.5 or 1.0
    return [value / norm for value in raw]


def embeddings_response(
    model: str,
    inputs: Sequence[str],
    prompt_tokens: int,
    dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS,
    encoding_format: str = "float",
) -> JSON:
    """An embeddings `list` object with one deterministic vector per input."""
    data: list[JSON] = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        embedding: list[float] | str = vector
        if encoding_format == "base64":
            packed = struct.pack(f"<{dimensions}f", *vector)
            embedding = base64.b64encode(packed).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> JSON:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


_NO_KEY = "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."


def check_bearer(headers: Mapping[str, str], expected: str) -> str | None:
    """None for `Authorization: Bearer <expected>`, else the 401 message (key ends only)."""
    scheme, _, key = headers.get("Authorization", "").partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    if not key:
        return _NO_KEY
    if hmac.compare_digest(key.encode(), expected.encode()):
        return None
    shown = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
    return f"Incorrect API key provided: {shown}."


_RETRY = "Please try again later."
# kind -> (status, type, code, default message)
_ERRORS: dict[ErrorKind, tuple[int, str, str | None, str]] = {
    "invalid_request": (400, "invalid_request_error", None, "Invalid request."),
    "invalid_api_key": (401, "invalid_request_error", "invalid_api_key", _NO_KEY),
    "rate_limit": (429, "requests", "rate_limit_exceeded", f"Rate limit reached. {_RETRY}"),
    "capacity": (429, "requests", "rate_limit_exceeded", f"Too many concurrent requests. {_RETRY}"),
    "server_error": (500, "server_error", None, "The server had an error processing your request."),
    "unavailable": (503, "server_error", "service_unavailable", f"Overloaded. {_RETRY}"),
    "timeout": (504, "server_error", "timeout", "The request timed out."),
}


def error(
    kind: ErrorKind, message: str | None = None, param: str | None = None
) -> tuple[int, JSON]:
    """HTTP status and OpenAI error body for one kind of failure."""
    status, error_type, code, default = _ERRORS[kind]
    return status, error_body(message or default, error_type, param, code)


def truncated(body: JSON) -> bytes:
    """The first half of a JSON object: looks like a reply but never parses."""
    text = json.dumps(body, separators=_COMPACT).encode("utf-8")
    return text[: max(1, len(text) // 2)]


def models_list(model_ids: Sequence[str], created: int = 0) -> JSON:
    """The `GET /v1/models` list."""
    data = [{"id": name, "object": "model", "created": created, "owned_by": "system"}
            for name in model_ids]
    return {"object": "list", "data": data}


def _respond_chat(call: Call, configured: int) -> tuple[JSON, int]:
    served, finish_reason = completion_budget(configured, call.max_tokens)
    return chat_completion(call.model, call.prompt_tokens, served, finish_reason), served


def _respond_embeddings(call: Call, _configured: int) -> tuple[JSON, int]:
    body = embeddings_response(
        call.model, call.inputs, call.prompt_tokens, call.dimensions, call.encoding_format
    )
    return body, 0


CHAT = Endpoint("/v1/chat/completions", parse_chat, _respond_chat, error, check_bearer)
EMBEDDINGS = Endpoint("/v1/embeddings", parse_embeddings, _respond_embeddings, error, check_bearer)
ENDPOINTS: tuple[Endpoint, ...] = (CHAT, EMBEDDINGS)
MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "text-embedding-3-small")
