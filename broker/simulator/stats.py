"""Counters and the bounded request log the control endpoints expose."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

WINDOW_S = 60.0  # the rate-limit headers describe per-minute limits


@dataclass(slots=True)
class LogEntry:
    """One inference request as the provider saw it."""

    ts: float
    path: str
    request_id: str
    model: str | None = None
    status: int = 0
    outcome: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    text: str = ""  # the prompt text: proves what did (or did not) reach the provider
    body: Any = None  # the request body as parsed JSON, or its raw text when it was not JSON

    def to_json(self) -> dict[str, Any]:
        """The entry as GET /_sim/requests shows it."""
        return {
            "ts": self.ts,
            "path": self.path,
            "request_id": self.request_id,
            "model": self.model,
            "status": self.status,
            "outcome": self.outcome,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": round(self.latency_ms, 3),
            "text": self.text,
            "body": self.body,
        }


@dataclass(slots=True)
class Usage:
    """Tokens served to one model."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_json(self) -> dict[str, int]:
        """The usage in OpenAI's field names, plus the number of requests."""
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


class Stats:
    """Request counters, concurrency high-water mark, usage served and recent requests."""

    def __init__(self, log_size: int) -> None:
        self.in_flight = 0
        self.log: deque[LogEntry] = deque(maxlen=log_size)
        self._zero()

    def _zero(self) -> None:
        self.since = time.time()
        self.requests_total = 0
        self.by_status: Counter[int] = Counter()
        self.by_model: Counter[str] = Counter()
        self.by_outcome: Counter[str] = Counter()
        self.usage: dict[str, Usage] = {}
        # Requests already in flight stay counted, so the peak never drops below them.
        self.peak_in_flight = self.in_flight
        self.log.clear()

    def reset(self) -> None:
        """Zero every counter and empty the log."""
        self._zero()

    def resize_log(self, size: int) -> None:
        """Change the log's bound, keeping the newest entries."""
        if size != self.log.maxlen:
            self.log = deque(self.log, maxlen=size)

    def enter(self) -> None:
        """A request was admitted."""
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def leave(self) -> None:
        """An admitted request finished."""
        self.in_flight -= 1

    def record(self, entry: LogEntry, *, served: bool) -> None:
        """Count a finished request; `served` marks a 200 whose usage the client received."""
        self.requests_total += 1
        self.by_status[entry.status] += 1
        self.by_outcome[entry.outcome] += 1
        if entry.model is not None:
            self.by_model[entry.model] += 1
            if served:
                usage = self.usage.get(entry.model)
                if usage is None:
                    usage = self.usage[entry.model] = Usage()
                usage.requests += 1
                usage.prompt_tokens += entry.prompt_tokens
                usage.completion_tokens += entry.completion_tokens
        self.log.append(entry)

    def snapshot(self) -> dict[str, Any]:
        """Every counter, JSON-ready (status codes become string keys)."""
        total = Usage()
        for usage in self.usage.values():
            total.requests += usage.requests
            total.prompt_tokens += usage.prompt_tokens
            total.completion_tokens += usage.completion_tokens
        return {
            "since": self.since,
            "requests_total": self.requests_total,
            "by_status": {str(code): n for code, n in sorted(self.by_status.items())},
            "by_model": dict(self.by_model),
            "by_outcome": dict(self.by_outcome),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "usage": {model: usage.to_json() for model, usage in self.usage.items()},
            "usage_total": total.to_json(),
            "log_size": len(self.log),
        }

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest `limit` log entries (all when None), oldest first."""
        entries = list(self.log)
        if limit is not None:
            entries = entries[-limit:] if limit else []
        return [entry.to_json() for entry in entries]


class RateWindow:
    """Fixed one-minute window behind the x-ratelimit-* figures (shown, never enforced)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start a fresh window now."""
        self.start = time.monotonic()
        self.requests = 0
        self.tokens = 0

    def _roll(self, now: float) -> None:
        if now - self.start >= WINDOW_S:
            self.start, self.requests, self.tokens = now, 0, 0

    def add(self, requests: int, tokens: int) -> None:
        """Count traffic into the current window."""
        self._roll(time.monotonic())
        self.requests += requests
        self.tokens += tokens

    def headers(self, rpm: int, tpm: int) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for the non-zero limits."""
        now = time.monotonic()
        self._roll(now)
        reset = _duration(WINDOW_S - (now - self.start))
        headers: dict[str, str] = {}
        if rpm:
            headers["x-ratelimit-limit-requests"] = str(rpm)
            headers["x-ratelimit-remaining-requests"] = str(max(0, rpm - self.requests))
            headers["x-ratelimit-reset-requests"] = reset
        if tpm:
            headers["x-ratelimit-limit-tokens"] = str(tpm)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, tpm - self.tokens))
            headers["x-ratelimit-reset-tokens"] = reset
        return headers


def _duration(seconds: float) -> str:
    """A duration the way OpenAI writes reset times: `12ms`, `8.64s`, `1m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s"
