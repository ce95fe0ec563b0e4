"""The adapter for OpenAI's wire format, the base every OpenAI-compatible preset builds on."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
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
from broker.schemas import JobBody, Usage
from workers.providers.base import HttpReply, HttpRequest, RateLimitSignal, UpstreamReply

MAX_MESSAGE_CHARS = 500
# 529 is the "overloaded" status some OpenAI-compatible gateways send.
UNAVAILABLE_STATUSES = frozenset({500, 502, 503, 504, 529})
_NO_RATE_LIMITS = RateLimitSignal()
# Go-style durations, as OpenAI sends them; Go spells microseconds with the micro or mu sign.
_UNIT_SECONDS = {
    "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6,
    "ns": 1e-9,
}
_DURATION_PART = re.compile(
    r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
)
# Providers echo a masked key in 401 messages; even masked, it does not belong in job results.
_KEY_LIKE = re.compile(r"\b(?:sk|rk|gsk|xai)[-_][\w\-*.]{6,}|(?i:bearer)\s+\S+")
_WHITESPACE = re.compile(r"\s+")
# A JobRequest is a JobBody too; only the OpenAI fields may travel upstream.
_BODY_FIELDS = set(JobBody.model_fields)
_SENT_AS_IS = _BODY_FIELDS - {"model"}  # the model becomes the deployment's upstream name


def parse_duration(text: str) -> float | None:
    """Seconds in a reset value such as "1s", "6m0s", "20ms", "1h2m3.5s" or a bare "12"."""
    text = text.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


def _count(text: str | None) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        try:
            value = int(float(text))
        except (ValueError, OverflowError):
            return None
    # Some gateways send -1 for "not applicable".
    return value if value >= 0 else None


def parse_rate_limits(headers: Mapping[str, str]) -> RateLimitSignal:
    """The x-ratelimit-* headers as numbers; headers are looked up by lower-case name."""
    remaining_requests = headers.get("x-ratelimit-remaining-requests")
    remaining_tokens = headers.get("x-ratelimit-remaining-tokens")
    limit_requests = headers.get("x-ratelimit-limit-requests")
    limit_tokens = headers.get("x-ratelimit-limit-tokens")
    reset_requests = headers.get("x-ratelimit-reset-requests")
    reset_tokens = headers.get("x-ratelimit-reset-tokens")
    if not (remaining_requests or remaining_tokens or limit_requests or limit_tokens
            or reset_requests or reset_tokens):
        return _NO_RATE_LIMITS  # most self-hosted servers send none: share one empty signal
    return RateLimitSignal(
        remaining_requests=_count(remaining_requests),
        remaining_tokens=_count(remaining_tokens),
        limit_requests=_count(limit_requests),
        limit_tokens=_count(limit_tokens),
        reset_requests_s=parse_duration(reset_requests) if reset_requests else None,
        reset_tokens_s=parse_duration(reset_tokens) if reset_tokens else None,
    )


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from retry-after-ms, or Retry-After as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            pass
        else:
            if math.isfinite(value) and value >= 0:
                return value
    text = headers.get("retry-after")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) and value >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0


def parse_usage(raw: Any) -> Usage | None:
    """Token usage from an OpenAI `usage` object; None when the provider sent none."""
    if not isinstance(raw, dict):
        return None
    prompt = _as_int(raw.get("prompt_tokens"))
    completion = _as_int(raw.get("completion_tokens"))
    total = _as_int(raw.get("total_tokens")) or prompt + completion
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def _clean(text: str) -> str:
    text = _KEY_LIKE.sub("[redacted]", _WHITESPACE.sub(" ", text).strip())
    if len(text) > MAX_MESSAGE_CHARS:
        return text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def error_details(content: bytes) -> tuple[str | None, str | None]:
    """The provider's error message and code/type from an error body, cleaned and truncated."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        text = content[: MAX_MESSAGE_CHARS * 4].decode("utf-8", "replace")
        return (_clean(text) or None), None
    if not isinstance(data, dict):
        return None, None
    error = data.get("error")
    message: Any = None
    code: Any = None
    if isinstance(error, dict):
        message = error.get("message")
        code = error.get("code") or error.get("type")
    elif isinstance(error, str):  # Ollama and several proxies send a bare string
        message = error
    if not isinstance(message, str):
        # vLLM puts the message at the top level; FastAPI-based servers use `detail`.
        message = data.get("message") or data.get("detail")
    cleaned = _clean(message) if isinstance(message, str) else None
    return (cleaned or None), (str(code)[:100] if code is not None else None)



def reply_json(reply: HttpReply) -> Any:
    """A 2xx reply's JSON body; UpstreamBadResponse (retryable) when it is not JSON."""
    try:
        return json.loads(reply.content)
    except (ValueError, RecursionError):
        raise UpstreamBadResponse(
            f"upstream sent a {reply.status} reply that is not JSON", status=reply.status
        ) from None

class OpenAICompatibleAdapter:
    """Speaks OpenAI's chat completions and embeddings format to any compatible endpoint."""

    def __init__(
        self,
        name: str,
        chat_path: str = "/chat/completions",
        embeddings_path: str = "/embeddings",
        auth_header: str = "Authorization",
        auth_scheme: str = "Bearer",
    ) -> None:
        self.name = name
        self.chat_path = chat_path
        self.embeddings_path = embeddings_path
        self.auth_header = auth_header
        self.auth_scheme = auth_scheme
        self._base_headers: dict[str, str] = {
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def url(self, deployment: Deployment, body: JobBody) -> str:
        """The endpoint URL for the job's kind."""
        path = self.chat_path if body.kind == "chat" else self.embeddings_path
        return deployment.base_url.rstrip("/") + path

    def payload(self, deployment: Deployment, body: JobBody) -> dict[str, Any]:
        """The JSON object sent upstream; presets override this to rename or drop parameters."""
        data = body.model_dump(include=_BODY_FIELDS, exclude_none=True)
        data["model"] = deployment.model
        return data

    def headers(self, api_key: str | None) -> dict[str, str]:
        """Request headers, with the auth header only when a key is given."""
        if not api_key:
            return self._base_headers
        headers = dict(self._base_headers)
        # A key read from a file often ends with a newline, which no HTTP stack accepts.
        key = api_key.strip()
        headers[self.auth_header] = f"{self.auth_scheme} {key}" if self.auth_scheme else key
        return headers

    def build_request(
        self, deployment: Deployment, body: JobBody, api_key: str | None
    ) -> HttpRequest:
        """Build the provider request for a job body."""
        if type(self).payload is OpenAICompatibleAdapter.payload:
            # The body as it stands, serialised by pydantic's core (a third of the cost of
            # dump-then-json.dumps on the model worker's hot path), with the upstream model.
            rest = body.model_dump_json(include=_SENT_AS_IS, exclude_none=True)
            model = json.dumps(deployment.model, ensure_ascii=False)
            text = f'{{"model":{model}' + ("}" if rest == "{}" else f",{rest[1:]}")
            content = text.encode("utf-8")
        else:
            content = json.dumps(
                self.payload(deployment, body), ensure_ascii=False, separators=(",", ":")
            ).encode("utf-8")
        return HttpRequest("POST", self.url(deployment, body), self.headers(api_key), content)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitSignal:
        """The provider's remaining-capacity headers."""
        return parse_rate_limits(headers)

    def parse_reply(self, deployment: Deployment, body: JobBody, reply: HttpReply) -> UpstreamReply:
        """Turn a 2xx reply into the unified response; raise UpstreamBadResponse if unreadable."""
        data = reply_json(reply)
        field = "choices" if body.kind == "chat" else "data"
        if not isinstance(data, dict) or not isinstance(data.get(field), list):
            message, _ = error_details(reply.content)
            suffix = f": {message}" if message else ""
            raise UpstreamBadResponse(
                f"upstream {body.kind} reply has no `{field}` list{suffix}", status=reply.status
            )
        return UpstreamReply(
            response=data,
            usage=parse_usage(data.get("usage")),
            rate_limits=self.rate_limits(reply.headers),
        )

    def map_error(self, reply: HttpReply) -> UpstreamError:
        """The broker error for a non-2xx reply (retryable or not, with Retry-After)."""
        status = reply.status
        message, code = error_details(reply.content)
        if status == 429:
            return UpstreamRateLimited(
                message or "upstream rate limit reached (429)", status=status,
                retry_after=parse_retry_after(reply.headers), detail=code,
            )
        if status in UNAVAILABLE_STATUSES or (status >= 500 and status not in (501, 505)):
            return UpstreamUnavailable(
                message or f"upstream unavailable ({status})", status=status,
                retry_after=parse_retry_after(reply.headers), detail=code,
            )
        if status == 408:
            return UpstreamTimeout(
                message or "upstream timed out (408)", status=status,
                retry_after=parse_retry_after(reply.headers), detail=code,
            )
        if 400 <= status < 600:
            return UpstreamRejected(
                message or f"upstream rejected the request ({status})", status=status, detail=code
            )
        # Redirects are not followed: a 3xx almost always means a wrong base_url.
        return UpstreamError(
            f"unexpected upstream status {status}; check the deployment's base_url",
            status=status, detail=code,
        )
