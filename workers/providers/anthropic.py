"""Anthropic's Messages API: `POST /v1/messages` with `anthropic-version: 2023-06-01`.

Requests: system and developer messages are lifted into the top-level `system`; messages
become content blocks in alternating user/assistant turns; OpenAI tool calls become
`tool_use` blocks and tool messages `tool_result` blocks in a user turn. `max_tokens` is
required, so it is always sent: the job's cap, else the deployment's `default_max_tokens`,
else DEFAULT_MAX_TOKENS. Replies become an OpenAI `chat.completion`; prompt tokens include
cache writes and reads. There is no embeddings endpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from broker.catalog import Deployment
from broker.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from broker.schemas import ChatMessage, JobBody, Usage
from workers.providers.base import HttpReply, HttpRequest, RateLimitSignal, UpstreamReply, register
from workers.providers.openai_compat import (
    OpenAICompatibleAdapter,
    error_details,
    parse_retry_after,
    reply_json,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
MAX_TEMPERATURE = 1.0  # Anthropic's range is 0-1, OpenAI's 0-2: higher values are clamped
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
ERRORS: dict[str, type[UpstreamError]] = {
    "invalid_request_error": UpstreamRejected,  # 400 (also other 4xx)
    "authentication_error": UpstreamRejected,  # 401
    "billing_error": UpstreamRejected,  # 402
    "permission_error": UpstreamRejected,  # 403
    "not_found_error": UpstreamRejected,  # 404
    "conflict_error": UpstreamRejected,  # 409
    "request_too_large": UpstreamRejected,  # 413
    "rate_limit_error": UpstreamRateLimited,  # 429
    "api_error": UpstreamUnavailable,  # 500
    "timeout_error": UpstreamTimeout,  # 504
    "overloaded_error": UpstreamUnavailable,  # 529
}
SPEND_LIMIT = "enforced_spend_limit_reached"  # a 429 that no retry can cure
_BY_STATUS = OpenAICompatibleAdapter("anthropic")  # for statuses without an error type
_TOOL_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    return content or ""


def _image(part: Mapping[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = str(image.get("url", "") if isinstance(image, Mapping) else image or "")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0]
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                            "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            blocks.append(_image(part))
    return blocks


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = {"arguments": raw}
    if not isinstance(arguments, dict):
        arguments = {"arguments": arguments}
    return {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""),
            "input": arguments}


def _turn(message: ChatMessage) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id or "",
                  "content": _text(message.content)}
        return "user", [result]
    if message.role == "assistant":
        calls = [_tool_use(call) for call in message.tool_calls or []]
        return "assistant", _blocks(message.content) + calls
    return "user", _blocks(message.content)


def convert_messages(messages: list[ChatMessage]) -> tuple[str | None, list[dict[str, Any]]]:
    """The top-level system prompt and the alternating turns for OpenAI chat messages."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role in ("system", "developer"):
            system.append(_text(message.content))
            continue
        role, blocks = _turn(message)
        if turns and turns[-1]["role"] == role:  # consecutive tool results share one turn
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return ("\n\n".join(system) if system else None), [_plain(turn) for turn in turns]


def _plain(turn: dict[str, Any]) -> dict[str, Any]:
    # A text-only turn goes as a plain string: the API takes both, and simpler
    # Anthropic-compatible servers take only the string.
    blocks = turn["content"]
    if blocks and all(block.get("type") == "text" for block in blocks):
        return {**turn, "content": "".join(block["text"] for block in blocks)}
    return turn


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    converted = {"name": function.get("name", ""),
                 "input_schema": function.get("parameters") or {"type": "object",
                                                                "properties": {}}}
    if function.get("description"):
        converted["description"] = function["description"]
    return converted


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, str):
        return dict(_TOOL_CHOICES.get(choice, {"type": "auto"}))
    return {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}


def build_payload(deployment: Deployment, body: JobBody) -> dict[str, Any]:
    """The Messages API request body for an OpenAI chat job."""
    system, turns = convert_messages(body.messages or [])
    cap = body.output_cap or deployment.default_max_tokens or DEFAULT_MAX_TOKENS
    payload: dict[str, Any] = {"model": deployment.model, "max_tokens": cap, "messages": turns}
    if system is not None:
        payload["system"] = system
    if body.temperature is not None:
        payload["temperature"] = min(body.temperature, MAX_TEMPERATURE)
    if body.top_p is not None:
        payload["top_p"] = body.top_p
    if body.stop:
        payload["stop_sequences"] = [body.stop] if isinstance(body.stop, str) else body.stop
    if body.tools:
        payload["tools"] = [_tool(tool) for tool in body.tools]
    if body.tool_choice is not None:
        payload["tool_choice"] = _tool_choice(body.tool_choice)
    if body.user:
        payload["metadata"] = {"user_id": body.user}
    return payload


def _count(raw: Mapping[str, Any], name: str) -> int:
    value = raw.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def convert_usage(raw: Any) -> tuple[Usage | None, dict[str, Any] | None]:
    """Broker usage and the OpenAI `usage` object for a Messages API `usage`."""
    if not isinstance(raw, dict):
        return None, None
    cached = _count(raw, "cache_read_input_tokens")
    prompt = _count(raw, "input_tokens") + _count(raw, "cache_creation_input_tokens") + cached
    completion = _count(raw, "output_tokens")
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion,
                  total_tokens=prompt + completion)
    return usage, {"prompt_tokens": prompt, "completion_tokens": completion,
                   "total_tokens": prompt + completion,
                   "prompt_tokens_details": {"cached_tokens": cached}}


def convert_message(data: Mapping[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI `chat.completion` for a Messages API reply (usage left to the caller)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function",
                          "function": {"name": block.get("name", ""),
                                       "arguments": json.dumps(block.get("input") or {})}})
    finish = FINISH_REASONS.get(str(data.get("stop_reason")), "stop")
    # Like OpenAI, no text is null content when the reply is tool calls or a refusal.
    empty = None if calls or finish == "content_filter" else ""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else empty}
    if calls:
        message["tool_calls"] = calls
    return {"id": data.get("id", ""), "object": "chat.completion", "created": int(time.time()),
            "model": data.get("model") or model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}]}


def _seconds_until(text: str | None, now: float) -> float | None:
    if not text:
        return None
    try:
        return max(0.0, datetime.fromisoformat(text).timestamp() - now)
    except ValueError:
        return None


def parse_rate_limits(headers: Mapping[str, str], now: float | None = None) -> RateLimitSignal:
    """The anthropic-ratelimit-* headers (resets are RFC 3339 times) as a signal."""
    if not any(name.startswith("anthropic-ratelimit-") for name in headers):
        return RateLimitSignal()
    current = time.time() if now is None else now
    numbers: dict[str, int | None] = {}
    for name in ("requests-limit", "requests-remaining", "tokens-limit", "tokens-remaining"):
        text = headers.get(f"anthropic-ratelimit-{name}", "")
        numbers[name] = int(text) if text.isdigit() else None
    return RateLimitSignal(
        remaining_requests=numbers["requests-remaining"],
        remaining_tokens=numbers["tokens-remaining"],
        limit_requests=numbers["requests-limit"],
        limit_tokens=numbers["tokens-limit"],
        reset_requests_s=_seconds_until(headers.get("anthropic-ratelimit-requests-reset"), current),
        reset_tokens_s=_seconds_until(headers.get("anthropic-ratelimit-tokens-reset"), current),
    )


def _error_fields(content: bytes) -> tuple[str | None, str | None]:
    """The error `type` and `details.error_code` of an Anthropic error body."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None, None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, None
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    kind = error.get("type")
    return (kind if isinstance(kind, str) else None), (code if isinstance(code, str) else None)


class AnthropicAdapter:
    """Translates OpenAI chat jobs to and from Anthropic's Messages API."""

    name = "anthropic"

    def build_request(
        self, deployment: Deployment, body: JobBody, api_key: str | None
    ) -> HttpRequest:
        """Build the provider request for a job body."""
        if body.kind != "chat":
            raise UpstreamRejected("Anthropic has no embeddings API; route embeddings elsewhere")
        headers = {"content-type": "application/json", "accept": "application/json",
                   "anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key.strip()
        content = json.dumps(build_payload(deployment, body), ensure_ascii=False,
                             separators=(",", ":")).encode("utf-8")
        url = deployment.base_url.rstrip("/") + "/messages"
        return HttpRequest("POST", url, headers, content)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitSignal:
        """The provider's remaining-capacity headers."""
        return parse_rate_limits(headers)

    def parse_reply(self, deployment: Deployment, body: JobBody, reply: HttpReply) -> UpstreamReply:
        """Turn a 2xx reply into the unified response; raise UpstreamBadResponse if unreadable."""
        data = reply_json(reply)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise UpstreamBadResponse("Messages API reply has no `content` list",
                                      status=reply.status)
        response = convert_message(data, deployment.model)
        usage, openai_usage = convert_usage(data.get("usage"))
        if openai_usage is not None:
            response["usage"] = openai_usage
        return UpstreamReply(response, usage, parse_rate_limits(reply.headers))

    def map_error(self, reply: HttpReply) -> UpstreamError:
        """The broker error for a non-2xx reply (retryable or not, with Retry-After)."""
        kind, code = _error_fields(reply.content)
        error_class = ERRORS.get(kind or "")
        if error_class is None:
            return _BY_STATUS.map_error(reply)
        message, _ = error_details(reply.content)
        text = message or f"Anthropic {kind} ({reply.status})"
        if error_class is UpstreamRateLimited and code == SPEND_LIMIT:
            return UpstreamRejected(text, status=reply.status, detail=code)
        if error_class is UpstreamRejected:
            return UpstreamRejected(text, status=reply.status, detail=kind)
        return error_class(text, status=reply.status, detail=kind,
                           retry_after=parse_retry_after(reply.headers))


register(AnthropicAdapter())
