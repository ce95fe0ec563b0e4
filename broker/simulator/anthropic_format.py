"""Anthropic Messages API wire format (anthropic-version 2023-06-01), as pure functions.

`POST /v1/messages` with the key in `x-api-key`; `max_tokens` is required. Prompt tokens are
counted with broker.tokens over the system prompt and the text of every content block, so the
usage a reply reports is what the server's stats count. A request that forces a tool
(`tool_choice` `any` or `tool`) is answered with a `tool_use` block.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Mapping
from typing import Any

from broker.simulator.openai_format import (
    JSON,
    Call,
    Endpoint,
    ErrorKind,
    InvalidRequestError,
    completion_budget,
    filler_text,
    load_object,
)
from broker.tokens import count_chat, encoding_name_for_model

_ROLES = ("user", "assistant")
_NO_KEY = "x-api-key header is required"
# kind -> (status, error type, default message)
_ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    "invalid_request": (400, "invalid_request_error", "Invalid request."),
    "invalid_api_key": (401, "authentication_error", "invalid x-api-key"),
    "rate_limit": (429, "rate_limit_error",
                   "This request would exceed the rate limit for your organization."),
    "capacity": (429, "rate_limit_error",
                 "Number of concurrent connections has exceeded your rate limit."),
    "server_error": (500, "api_error", "Internal server error"),
    "unavailable": (529, "overloaded_error", "Overloaded"),
    "timeout": (504, "timeout_error", "Request timed out"),
}


def block_text(content: Any) -> str:
    """The text of a message's content: a string, or the text inside its blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            texts.append(json.dumps(block.get("input") or {}, sort_keys=True))
        elif kind == "tool_result":
            texts.append(block_text(block.get("content")))
    return "".join(texts)


def _max_tokens(body: Mapping[str, Any]) -> int:
    value = body.get("max_tokens")
    if value is None:
        raise InvalidRequestError("max_tokens: Field required", param="max_tokens")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError("max_tokens: Input should be greater than or equal to 1",
                                  param="max_tokens")
    return value


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages: Field required", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise InvalidRequestError(
                f"messages.{index}.role: Input should be 'user' or 'assistant'",
                param=f"messages.{index}.role")
        if not isinstance(message.get("content"), str | list):
            raise InvalidRequestError(f"messages.{index}.content: Field required",
                                      param=f"messages.{index}.content")
    return messages


def parse_messages(raw: bytes) -> Call:
    """Validate a Messages API request and count its prompt tokens."""
    body = load_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("model: Field required", param="model")
    max_tokens = _max_tokens(body)
    messages = _messages(body)
    if body.get("stream"):
        raise InvalidRequestError("Streaming is not supported by this provider.", param="stream")
    system = block_text(body.get("system"))
    flat = [{"role": "system", "content": system}] if system else []
    flat += [{"role": m["role"], "content": block_text(m["content"])} for m in messages]
    return Call(
        model=model,
        prompt_tokens=count_chat(flat, encoding_name_for_model(model)),
        text="\n".join(str(m["content"]) for m in flat),
        body=body,
        max_tokens=max_tokens,
    )


def forced_tool(body: Mapping[str, Any]) -> str | None:
    """The tool a request forces the model to call, if any."""
    choice = body.get("tool_choice")
    tools = body.get("tools")
    if not isinstance(choice, dict) or not isinstance(tools, list) or not tools:
        return None
    if choice.get("type") == "tool":
        return str(choice.get("name", ""))
    first = tools[0]
    if choice.get("type") == "any" and isinstance(first, dict):
        return str(first.get("name", ""))
    return None


def message_object(model: str, prompt_tokens: int, output_tokens: int, stop_reason: str,
            content: list[JSON]) -> JSON:
    """A Messages API `message` object."""
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": output_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def respond_messages(call: Call, configured: int) -> tuple[JSON, int]:
    """A reply of the configured length (capped by max_tokens), or a forced tool call."""
    served, finish = completion_budget(configured, call.max_tokens)
    tool = forced_tool(call.body)
    if tool is not None:
        block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool,
                 "input": {}}
        return message_object(call.model, call.prompt_tokens, served, "tool_use", [block]), served
    stop_reason = "max_tokens" if finish == "length" else "end_turn"
    text = {"type": "text", "text": filler_text(served)}
    return message_object(call.model, call.prompt_tokens, served, stop_reason, [text]), served


def error(kind: ErrorKind, message: str | None = None, param: str | None = None
          ) -> tuple[int, JSON]:
    """HTTP status and Anthropic error body for one kind of failure."""
    status, error_type, default = _ERRORS[kind]
    body = {"type": "error", "error": {"type": error_type, "message": message or default},
            "request_id": f"req_{uuid.uuid4().hex[:24]}"}
    return status, body


def check_api_key(headers: Mapping[str, str], expected: str) -> str | None:
    """None when `x-api-key` is the expected key, else the 401 message (never the key)."""
    key = headers.get("x-api-key", "").strip()
    if not key:
        return _NO_KEY
    return None if hmac.compare_digest(key.encode(), expected.encode()) else "invalid x-api-key"


MESSAGES = Endpoint("/v1/messages", parse_messages, respond_messages, error, check_api_key)
ENDPOINTS: tuple[Endpoint, ...] = (MESSAGES,)
