"""What happens to each request: scripted or dice-rolled outcome, latency, capacity gate."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from enum import StrEnum

from broker.simulator.settings import LatencyDistribution, SimSettings


class Outcome(StrEnum):
    """The fate of one valid inference request."""

    OK = "ok"
    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"


_ALIASES: dict[str, Outcome] = {
    "200": Outcome.OK,
    "rate_limit": Outcome.RATE_LIMIT,
    "server_error": Outcome.SERVER_ERROR,
    "unavailable": Outcome.UNAVAILABLE,
}


def parse_outcome(value: object) -> Outcome:
    """An outcome from its script spelling (`ok`, `429`, `500`, `503`, `timeout`, `malformed`)."""
    text = str(value).strip().lower()
    if text in _ALIASES:
        return _ALIASES[text]
    try:
        return Outcome(text)
    except ValueError:
        choices = ", ".join(outcome.value for outcome in Outcome)
        raise ValueError(f"unknown outcome {value!r}; expected one of {choices}") from None


class ConcurrencyGate:
    """Admits at most `limit` requests at once (0 admits all), like a provider's capacity cap."""

    __slots__ = ("in_flight", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def try_enter(self) -> bool:
        """Take a slot if one is free; the caller must `leave()` after a True."""
        # The event loop is single-threaded, so a plain counter is race-free.
        if self.limit and self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """Give back a slot taken by `try_enter()`."""
        self.in_flight -= 1


class Behaviour:
    """Seeded fault dice and latency draws, a queue of scripted outcomes, and the gate."""

    def __init__(self, settings: SimSettings) -> None:
        self.script: deque[Outcome] = deque()
        self.gate = ConcurrencyGate(settings.max_concurrency)
        self._seed = settings.seed
        self._dice = random.Random()
        self._latency_rng = random.Random()
        self._thresholds: tuple[tuple[float, Outcome], ...] = ()
        self._latency = LatencyDistribution.parse("0")
        self.timeout_hold_s = settings.timeout_hold_s
        self.configure(settings)
        self.reseed()

    def configure(self, settings: SimSettings) -> None:
        """Adopt new knobs; reseeds only when the seed itself changed."""
        cumulative = 0.0
        thresholds: list[tuple[float, Outcome]] = []
        for rate, outcome in (
            (settings.rate_429, Outcome.RATE_LIMIT),
            (settings.rate_500, Outcome.SERVER_ERROR),
            (settings.rate_503, Outcome.UNAVAILABLE),
            (settings.rate_timeout, Outcome.TIMEOUT),
            (settings.rate_malformed, Outcome.MALFORMED),
        ):
            if rate > 0:
                cumulative += rate
                thresholds.append((cumulative, outcome))
        self._thresholds = tuple(thresholds)
        self._latency = settings.latency_distribution()
        self.timeout_hold_s = settings.timeout_hold_s
        self.gate.limit = settings.max_concurrency
        if settings.seed != self._seed:
            self._seed = settings.seed
            self.reseed()

    def reseed(self) -> None:
        """Restart both random streams from the seed, so a run can be replayed exactly."""
        if self._seed is None:
            self._dice.seed()
            self._latency_rng.seed()
        else:
            # Separate streams: changing the latency spec must not shift the fault sequence.
            self._dice.seed(f"faults:{self._seed}")
            self._latency_rng.seed(f"latency:{self._seed}")

    def load_script(self, outcomes: Iterable[Outcome], *, append: bool = False) -> int:
        """Queue outcomes to use, one per valid request, before the dice; returns the length."""
        if not append:
            self.script.clear()
        self.script.extend(outcomes)
        return len(self.script)

    def next_outcome(self) -> Outcome:
        """The next scripted outcome, else a roll of the fault dice."""
        if self.script:
            return self.script.popleft()
        if not self._thresholds:  # no faults configured: skip the draw, keep the hot path cheap
            return Outcome.OK
        roll = self._dice.random()
        for threshold, outcome in self._thresholds:
            if roll < threshold:
                return outcome
        return Outcome.OK

    def latency_s(self) -> float:
        """One latency draw, in seconds."""
        return self._latency.sample_ms(self._latency_rng) / 1000.0
