"""Azure OpenAI data-plane wire format (api-version 2024-10-21 and later), as pure functions.

`/openai/deployments/{deployment}/chat/completions?api-version=...` (and `/embeddings`) with
the key in `api-key`. The body is OpenAI's; the deployment in the path stands for the model.
Replies carry Azure's content-filter annotations, errors Azure's envelope (`code` as a string,
such as "429" or "401"). Mounted through PATH_ENDPOINTS like the Gemini format.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from broker.simulator import openai_format
from broker.simulator.openai_format import (
    JSON,
    Call,
    Endpoint,
    ErrorKind,
    InvalidRequestError,
    load_object,
)

PathEndpoint = tuple[str, Callable[[Mapping[str, str]], Endpoint]]
_RETRY = "Please try again later."
_NO_KEY = ("Access denied due to missing subscription key. Make sure to include subscription "
           "key when making requests to an API.")
_BAD_KEY = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API "
            "endpoint for your resource.")
# kind -> (status, code, default message)
_ERRORS: dict[ErrorKind, tuple[int, str | None, str]] = {
    "invalid_request": (400, None, "Invalid request."),
    "invalid_api_key": (401, "401", _BAD_KEY),
    "rate_limit": (429, "429", "Requests to the ChatCompletions_Create Operation have exceeded "
                               "the token rate limit of your current pricing tier. " + _RETRY),
    "capacity": (429, "429", f"Too many concurrent requests. {_RETRY}"),
    "server_error": (500, "InternalServerError", "The server had an error processing your "
                                                 "request."),
    "unavailable": (503, "ServiceUnavailable", f"The service is temporarily unavailable. {_RETRY}"),
    "timeout": (504, "Timeout", "The operation was timeout."),
}
_SAFE = {"filtered": False, "severity": "safe"}
FILTER_RESULTS: JSON = {name: dict(_SAFE) for name in ("hate", "self_harm", "sexual", "violence")}


def _with_deployment(raw: bytes, params: Mapping[str, str],
                     parse: Callable[[bytes], Call]) -> Call:
    """Parse OpenAI's body with the path's deployment as its model."""
    if not params.get("api-version"):
        raise InvalidRequestError("Missing required query parameter: api-version",
                                  param="api-version")
    body = load_object(raw)
    call = parse(json.dumps({**body, "model": params["deployment"]}).encode("utf-8"))
    call.body = body
    return call


def respond_chat(call: Call, configured: int) -> tuple[JSON, int]:
    """OpenAI's chat completion plus Azure's prompt and completion filter annotations."""
    body, served = openai_format.CHAT.respond(call, configured)
    body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": FILTER_RESULTS}]
    for choice in body["choices"]:
        choice["content_filter_results"] = FILTER_RESULTS
    return body, served


def error(kind: ErrorKind, message: str | None = None, param: str | None = None
          ) -> tuple[int, JSON]:
    """HTTP status and Azure error body for one kind of failure."""
    status, code, default = _ERRORS[kind]
    body: dict[str, Any] = {"code": code, "message": message or default}
    if kind == "invalid_request":
        body.update(param=param, type="invalid_request_error")
    return status, {"error": body}


def check_api_key(headers: Mapping[str, str], expected: str) -> str | None:
    """None when `api-key` is the expected key, else the 401 message (never the key)."""
    key = headers.get("api-key", "").strip()
    if not key:
        return _NO_KEY
    return None if hmac.compare_digest(key.encode(), expected.encode()) else _BAD_KEY


def _binder(path: str, parse: Callable[[bytes], Call],
            respond: Callable[[Call, int], tuple[JSON, int]]) -> PathEndpoint:
    def bind(params: Mapping[str, str]) -> Endpoint:
        return Endpoint(path, lambda raw: _with_deployment(raw, params, parse), respond, error,
                        check_api_key)

    return path, bind


_DEPLOYMENT = "/openai/deployments/{deployment}"
PATH_ENDPOINTS: tuple[PathEndpoint, ...] = (
    _binder(f"{_DEPLOYMENT}/chat/completions", openai_format.parse_chat, respond_chat),
    _binder(f"{_DEPLOYMENT}/embeddings", openai_format.parse_embeddings,
            openai_format.EMBEDDINGS.respond),
)
