"""Gemini API wire format (v1beta generateContent, batchEmbedContents, embedContent).

The model is part of the path (`/v1beta/models/{model}:generateContent`), so these endpoints
are mounted through PATH_ENDPOINTS: each pairs a route with a function that binds the path
parameters into an `Endpoint` for one request. The key travels in `x-goog-api-key`. Usage is
counted with broker.tokens; like the real API, embeddings replies carry no usage.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from broker.simulator.openai_format import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    JSON,
    MAX_EMBEDDING_DIMENSIONS,
    Call,
    Endpoint,
    ErrorKind,
    InvalidRequestError,
    completion_budget,
    embedding_vector,
    filler_text,
    load_object,
)
from broker.tokens import count_chat, count_inputs, encoding_name_for_model

PathEndpoint = tuple[str, Callable[[Mapping[str, str]], Endpoint]]
MAX_BATCH = 100  # requests in one batchEmbedContents call
_ROLES = ("user", "model")
_NO_KEY = ("Method doesn't allow unregistered callers (callers without established identity). "
           "Please use API Key or other form of API consumer identity to call this API.")
_BAD_KEY = "API key not valid. Please pass a valid API key."
# kind -> (status, status name, default message)
_ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    "invalid_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "invalid_api_key": (400, "INVALID_ARGUMENT", _BAD_KEY),
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "capacity": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "server_error": (500, "INTERNAL", "An internal error has occurred. Please retry."),
    "unavailable": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "timeout": (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def parts_text(content: Any) -> str:
    """The text of a Content object's parts (function calls and responses as JSON)."""
    parts = content.get("parts") if isinstance(content, Mapping) else None
    texts: list[str] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Mapping):
            continue
        if "text" in part:
            texts.append(str(part["text"]))
        elif "functionCall" in part or "functionResponse" in part:
            texts.append(json.dumps(part.get("functionCall") or part.get("functionResponse"),
                                    sort_keys=True))
    return "".join(texts)


def _contents(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidRequestError("* GenerateContentRequest.contents: contents is not specified")
    for index, content in enumerate(contents):
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
            raise InvalidRequestError(
                f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be "
                "empty.")
        if content.get("role", "user") not in _ROLES:
            raise InvalidRequestError(
                f"* GenerateContentRequest.contents[{index}].role: Please use a valid role: "
                "user, model.")
    return contents


def _max_output_tokens(body: Mapping[str, Any]) -> int | None:
    config = body.get("generationConfig")
    value = config.get("maxOutputTokens") if isinstance(config, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(
            "* GenerateContentRequest.generation_config.max_output_tokens: must be positive.")
    return value


def parse_generate(raw: bytes, model: str) -> Call:
    """Validate a generateContent request and count its prompt tokens."""
    body = load_object(raw)
    contents = _contents(body)
    cap = _max_output_tokens(body)
    system = parts_text(body.get("systemInstruction"))
    flat = [{"role": "system", "content": system}] if system else []
    flat += [{"role": c.get("role", "user"), "content": parts_text(c)} for c in contents]
    return Call(model=model, prompt_tokens=count_chat(flat, encoding_name_for_model(model)),
                text="\n".join(m["content"] for m in flat), body=body, max_tokens=cap)


def forced_function(body: Mapping[str, Any]) -> str | None:
    """The function a request forces (functionCallingConfig mode ANY), if any."""
    tool_config = body.get("toolConfig")
    config = tool_config.get("functionCallingConfig") if isinstance(tool_config, dict) else None
    if not isinstance(config, dict) or config.get("mode") != "ANY":
        return None
    allowed = config.get("allowedFunctionNames")
    if isinstance(allowed, list) and allowed:
        return str(allowed[0])
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        declarations = tool.get("functionDeclarations") if isinstance(tool, dict) else None
        if isinstance(declarations, list) and declarations and isinstance(declarations[0], dict):
            return str(declarations[0].get("name", ""))
    return None


def respond_generate(call: Call, configured: int) -> tuple[JSON, int]:
    """A candidate of the configured length (capped by maxOutputTokens), or a function call."""
    served, finish = completion_budget(configured, call.max_tokens)
    function = forced_function(call.body)
    parts: list[JSON] = ([{"functionCall": {"name": function, "args": {}}}] if function
                         else [{"text": filler_text(served)}])
    candidate = {"content": {"parts": parts, "role": "model"},
                 "finishReason": "MAX_TOKENS" if finish == "length" and not function else "STOP",
                 "index": 0}
    usage = {"promptTokenCount": call.prompt_tokens, "candidatesTokenCount": served,
             "totalTokenCount": call.prompt_tokens + served}
    body = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": call.model,
            "responseId": uuid.uuid4().hex[:22]}
    return body, served


def _dimensions(request: Mapping[str, Any]) -> int:
    value = request.get("outputDimensionality")
    if value is None:
        return DEFAULT_EMBEDDING_DIMENSIONS
    if isinstance(value, bool) or not isinstance(value, int) or not (
            1 <= value <= MAX_EMBEDDING_DIMENSIONS):
        raise InvalidRequestError(f"* output_dimensionality: must be 1-{MAX_EMBEDDING_DIMENSIONS}")
    return value


def _embed_call(body: JSON, requests: list[Any], model: str) -> Call:
    inputs: list[str] = []
    for index, request in enumerate(requests):
        text = parts_text(request.get("content")) if isinstance(request, dict) else ""
        if not text:
            raise InvalidRequestError(f"* requests[{index}].content: content is not specified")
        inputs.append(text)
    dimensions = _dimensions(requests[0])
    return Call(model=model, prompt_tokens=count_inputs(inputs, encoding_name_for_model(model)),
                text="\n".join(inputs), body=body, inputs=inputs, dimensions=dimensions)


def parse_batch_embed(raw: bytes, model: str) -> Call:
    """Validate a batchEmbedContents request: each request names the model of the path."""
    body = load_object(raw)
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests or len(requests) > MAX_BATCH:
        raise InvalidRequestError(f"* requests: between 1 and {MAX_BATCH} requests are allowed")
    for index, request in enumerate(requests):
        if not isinstance(request, dict) or request.get("model") != f"models/{model}":
            raise InvalidRequestError(
                f"* requests[{index}].model: must be models/{model}, the model of the URL")
    return _embed_call(body, requests, model)


def parse_embed(raw: bytes, model: str) -> Call:
    """Validate an embedContent request (one content)."""
    body = load_object(raw)
    return _embed_call(body, [body], model)


def respond_batch_embed(call: Call, _configured: int) -> tuple[JSON, int]:
    """One deterministic vector per request."""
    values = [{"values": embedding_vector(text, call.dimensions)} for text in call.inputs]
    return {"embeddings": values}, 0


def respond_embed(call: Call, _configured: int) -> tuple[JSON, int]:
    """The vector of the one content."""
    return {"embedding": {"values": embedding_vector(call.inputs[0], call.dimensions)}}, 0


def error(kind: ErrorKind, message: str | None = None, param: str | None = None
          ) -> tuple[int, JSON]:
    """HTTP status and Google error body for one kind of failure."""
    status, name, default = _ERRORS[kind]
    if kind == "invalid_api_key" and message == _NO_KEY:
        status, name = 403, "PERMISSION_DENIED"
    body: JSON = {"code": status, "message": message or default, "status": name}
    if kind == "invalid_api_key" and status == 400:
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
    return status, {"error": body}


def check_api_key(headers: Mapping[str, str], expected: str) -> str | None:
    """None when `x-goog-api-key` is the expected key, else the error message."""
    key = headers.get("x-goog-api-key", "").strip()
    if not key:
        return _NO_KEY
    return None if hmac.compare_digest(key.encode(), expected.encode()) else _BAD_KEY


def _binder(path: str, parse: Callable[[bytes, str], Call],
            respond: Callable[[Call, int], tuple[JSON, int]]) -> PathEndpoint:
    def bind(params: Mapping[str, str]) -> Endpoint:
        model = params["model"]
        return Endpoint(path, lambda raw: parse(raw, model), respond, error, check_api_key)

    return path, bind


PATH_ENDPOINTS: tuple[PathEndpoint, ...] = (
    _binder("/v1beta/models/{model}:generateContent", parse_generate, respond_generate),
    _binder("/v1beta/models/{model}:batchEmbedContents", parse_batch_embed, respond_batch_embed),
    _binder("/v1beta/models/{model}:embedContent", parse_embed, respond_embed),
)
