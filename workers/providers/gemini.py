"""Google's Gemini API (Generative Language API, v1beta): generateContent, batchEmbedContents.

Requests go to `{base_url}/models/{model}:generateContent` (base_url such as
https://generativelanguage.googleapis.com/v1beta) with the key in `x-goog-api-key`, never in
the URL. Roles become user/model, system and developer messages `systemInstruction`, tool
calls `functionCall` parts and tool messages `functionResponse` parts; parameters go into
`generationConfig`. A prompt blocked by `promptFeedback.blockReason` is a non-retryable
UpstreamRejected with detail `content_filter`; a blocked candidate keeps its (empty) reply
with finish_reason `content_filter`, as OpenAI reports one.
"""

from __future__ import annotations

import json
import mimetypes
import re
import time
import uuid
from collections.abc import Mapping
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
    parse_duration,
    parse_retry_after,
    reply_json,
)

FINISH_REASONS = {
    "STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
    "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
ERRORS: dict[str, type[UpstreamError]] = {
    "INVALID_ARGUMENT": UpstreamRejected,  # 400, also a key that is not valid
    "FAILED_PRECONDITION": UpstreamRejected,  # 400, e.g. billing not enabled
    "UNAUTHENTICATED": UpstreamRejected,  # 401
    "PERMISSION_DENIED": UpstreamRejected,  # 403
    "NOT_FOUND": UpstreamRejected,  # 404
    "RESOURCE_EXHAUSTED": UpstreamRateLimited,  # 429
    "INTERNAL": UpstreamUnavailable,  # 500
    "UNAVAILABLE": UpstreamUnavailable,  # 503
    "DEADLINE_EXCEEDED": UpstreamTimeout,  # 504
}
_BY_STATUS = OpenAICompatibleAdapter("gemini")  # for bodies without a status
_GOOGLE_KEY = re.compile(r"AIza[\w-]{20,}")
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_COMPACT = (",", ":")


def model_path(deployment: Deployment) -> str:
    """`models/{model}` for the deployment, whether or not the catalog wrote the prefix."""
    return "models/" + deployment.model.removeprefix("models/")


def _part(item: Mapping[str, Any]) -> dict[str, Any] | None:
    if item.get("type") == "text":
        return {"text": str(item.get("text", ""))}
    if item.get("type") != "image_url":
        return None
    image = item.get("image_url")
    url = str(image.get("url", "") if isinstance(image, Mapping) else image or "")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return {"inlineData": {"mimeType": header[5:].split(";", 1)[0], "data": data}}
    mime = mimetypes.guess_type(url)[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _parts(content: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    return [part for item in content if (part := _part(item)) is not None]


def _arguments(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        value = raw
    return value if isinstance(value, dict) else {"arguments": value}


def _response_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return value if isinstance(value, dict) else {"content": value}


def convert_messages(
    messages: list[ChatMessage],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """`systemInstruction` and `contents` for OpenAI chat messages."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the functionResponse
    for message in messages:
        if message.role in ("system", "developer"):
            system.extend(_parts(message.content))
            continue
        role, parts = "user", _parts(message.content)
        if message.role == "assistant":
            role = "model"
            for call in message.tool_calls or []:
                function = call.get("function") or {}
                names[str(call.get("id", ""))] = str(function.get("name", ""))
                parts.append({"functionCall": {"name": function.get("name", ""),
                                               "args": _arguments(function.get("arguments"))}})
        elif message.role == "tool":
            name = names.get(message.tool_call_id or "", message.name or "")
            text = message.content if isinstance(message.content, str) else "".join(
                p.get("text", "") for p in _parts(message.content))
            parts = [{"functionResponse": {"name": name, "response": _response_object(text)}}]
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return ({"parts": system} if system else None), contents


def _generation_config(deployment: Deployment, body: JobBody) -> dict[str, Any]:
    config: dict[str, Any] = {}
    cap = body.output_cap or deployment.default_max_tokens
    if cap:
        config["maxOutputTokens"] = cap
    if body.temperature is not None:
        config["temperature"] = body.temperature
    if body.top_p is not None:
        config["topP"] = body.top_p
    if body.stop:
        config["stopSequences"] = [body.stop] if isinstance(body.stop, str) else body.stop
    if body.seed is not None:
        config["seed"] = body.seed
    fmt = body.response_format or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    return config


def _tool_config(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, str):
        return {"functionCallingConfig": {"mode": _MODES.get(choice, "AUTO")}}
    name = (choice.get("function") or {}).get("name", "")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def chat_payload(deployment: Deployment, body: JobBody) -> dict[str, Any]:
    """The generateContent request body for an OpenAI chat job."""
    system, contents = convert_messages(body.messages or [])
    payload: dict[str, Any] = {"contents": contents}
    if system is not None:
        payload["systemInstruction"] = system
    config = _generation_config(deployment, body)
    if config:
        payload["generationConfig"] = config
    if body.tools:
        declarations = [{k: v for k, v in (tool.get("function") or {}).items()
                         if k in ("name", "description", "parameters")} for tool in body.tools]
        payload["tools"] = [{"functionDeclarations": declarations}]
    if body.tool_choice is not None:
        payload["toolConfig"] = _tool_config(body.tool_choice)
    return payload


MAX_EMBED_INPUTS = 100  # batchEmbedContents' limit on requests per call


def embeddings_payload(deployment: Deployment, body: JobBody) -> dict[str, Any]:
    """The batchEmbedContents request body: one request per input string."""
    inputs = [body.input] if isinstance(body.input, str) else list(body.input or [])
    if len(inputs) > MAX_EMBED_INPUTS:
        # The API refuses larger requests; one job is one upstream call, so say so here.
        raise UpstreamRejected(
            f"Gemini embeds at most {MAX_EMBED_INPUTS} inputs per request and this job has "
            f"{len(inputs)}: split it into jobs of {MAX_EMBED_INPUTS} or fewer")
    requests = []
    for text in inputs:
        request: dict[str, Any] = {"model": model_path(deployment),
                                   "content": {"parts": [{"text": text}]}}
        if body.dimensions:
            request["outputDimensionality"] = body.dimensions
        requests.append(request)
    return {"requests": requests}


def _int(raw: Mapping[str, Any], name: str) -> int:
    value = raw.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def convert_usage(raw: Any) -> tuple[Usage | None, dict[str, Any] | None]:
    """Broker usage and the OpenAI `usage` object for a `usageMetadata`."""
    if not isinstance(raw, dict):
        return None, None
    prompt = _int(raw, "promptTokenCount") + _int(raw, "toolUsePromptTokenCount")
    thoughts = _int(raw, "thoughtsTokenCount")
    completion = _int(raw, "candidatesTokenCount") + thoughts  # thinking is billed as output
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion,
                  total_tokens=prompt + completion)
    return usage, {"prompt_tokens": prompt, "completion_tokens": completion,
                   "total_tokens": prompt + completion,
                   "prompt_tokens_details": {"cached_tokens": _int(raw, "cachedContentTokenCount")},
                   "completion_tokens_details": {"reasoning_tokens": thoughts}}


def convert_candidate(candidate: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI choice for the first Gemini candidate."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if "text" in part:
            texts.append(str(part["text"]))
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            calls.append({"id": str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
                          "type": "function",
                          "function": {"name": call.get("name", ""),
                                       "arguments": json.dumps(call.get("args") or {})}})
    finish = FINISH_REASONS.get(str(candidate.get("finishReason")), "stop")
    if calls and finish == "stop":
        finish = "tool_calls"
    # Like OpenAI, no text is null content when the reply is tool calls or was filtered.
    empty = None if calls or finish == "content_filter" else ""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else empty}
    if calls:
        message["tool_calls"] = calls
    return {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}


def _chat_response(data: dict[str, Any], model: str, status: int) -> dict[str, Any]:
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        feedback = data.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if reason:
            raise UpstreamRejected(f"Gemini blocked the prompt (blockReason {reason})",
                                   status=status, detail="content_filter")
        raise UpstreamBadResponse("generateContent reply has no candidates", status=status)
    return {"id": str(data.get("responseId") or f"chatcmpl-{uuid.uuid4().hex}"),
            "object": "chat.completion", "created": int(time.time()),
            "model": data.get("modelVersion") or model,
            "choices": [convert_candidate(candidates[0])]}


def _embeddings_response(data: dict[str, Any], model: str, status: int) -> dict[str, Any]:
    embeddings = data.get("embeddings")
    if not isinstance(embeddings, list):
        raise UpstreamBadResponse("batchEmbedContents reply has no `embeddings`", status=status)
    vectors = [e.get("values") if isinstance(e, dict) else None for e in embeddings]
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": v or []}
                     for i, v in enumerate(vectors)]}


def _retry_delay(error: Mapping[str, Any]) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail such as {"retryDelay": "37s"}."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and isinstance(detail.get("retryDelay"), str):
            return parse_duration(detail["retryDelay"])
    return None


class GeminiAdapter:
    """Translates OpenAI chat and embeddings jobs to and from the Gemini API."""

    name = "gemini"

    def build_request(
        self, deployment: Deployment, body: JobBody, api_key: str | None
    ) -> HttpRequest:
        """Build the provider request for a job body."""
        chat = body.kind == "chat"
        payload = chat_payload(deployment, body) if chat else embeddings_payload(deployment, body)
        method = "generateContent" if chat else "batchEmbedContents"
        url = f"{deployment.base_url.rstrip('/')}/{model_path(deployment)}:{method}"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key.strip()
        content = json.dumps(payload, ensure_ascii=False, separators=_COMPACT).encode("utf-8")
        return HttpRequest("POST", url, headers, content)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitSignal:
        """Gemini sends no remaining-capacity headers; quota shows only as 429s."""
        return RateLimitSignal()

    def parse_reply(self, deployment: Deployment, body: JobBody, reply: HttpReply) -> UpstreamReply:
        """Turn a 2xx reply into the unified response; raise UpstreamBadResponse if unreadable."""
        data = reply_json(reply)
        if not isinstance(data, dict):
            raise UpstreamBadResponse("Gemini reply is not a JSON object", status=reply.status)
        model = deployment.model.removeprefix("models/")
        if body.kind == "chat":
            response = _chat_response(data, model, reply.status)
        else:
            response = _embeddings_response(data, model, reply.status)
        usage, openai_usage = convert_usage(data.get("usageMetadata"))
        if openai_usage is not None:
            response["usage"] = openai_usage
        return UpstreamReply(response, usage)

    def map_error(self, reply: HttpReply) -> UpstreamError:
        """The broker error for a non-2xx reply (retryable or not, with Retry-After)."""
        try:
            data = json.loads(reply.content)
        except (ValueError, RecursionError):
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        status = error.get("status") if isinstance(error, dict) else None
        error_class = ERRORS.get(status) if isinstance(status, str) else None
        if error_class is None or not isinstance(error, dict) or not isinstance(status, str):
            return _BY_STATUS.map_error(reply)
        message, _ = error_details(reply.content)
        text = _GOOGLE_KEY.sub("[redacted]", message or f"Gemini {status} ({reply.status})")
        if error_class is UpstreamRejected:
            return UpstreamRejected(text, status=reply.status, detail=status)
        retry_after = _retry_delay(error)
        if retry_after is None:
            retry_after = parse_retry_after(reply.headers)
        return error_class(text, status=reply.status, detail=status, retry_after=retry_after)


register(GeminiAdapter())
