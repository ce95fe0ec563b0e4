"""Every knob of the simulated provider, validated once by pydantic."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

LatencyKind = Literal["fixed", "uniform", "normal", "lognormal"]
# Every distribution other than fixed takes exactly two figures after its kind.
_TWO_FIGURE_KINDS: dict[str, LatencyKind] = {
    "uniform": "uniform",
    "normal": "normal",
    "lognormal": "lognormal",
}


@dataclass(frozen=True, slots=True)
class LatencyDistribution:
    """A parsed latency spec; all figures in milliseconds (sigma of lognormal is unitless)."""

    kind: LatencyKind
    a: float
    b: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> LatencyDistribution:
        """Parse `50`, `uniform:20:80`, `normal:50:10` or `lognormal:50:0.5` (median, sigma)."""
        parts = [part.strip() for part in spec.strip().split(":")]
        try:
            numbers = [float(part) for part in parts[1:]] if len(parts) > 1 else [float(parts[0])]
        except ValueError:
            raise ValueError(f"bad latency spec {spec!r}: figures must be numbers") from None
        if not all(map(math.isfinite, numbers)) or min(numbers) < 0:
            raise ValueError(f"bad latency spec {spec!r}: figures must be finite and >= 0")
        if len(parts) == 1:
            return cls("fixed", numbers[0])
        kind = _TWO_FIGURE_KINDS.get(parts[0].lower())
        if kind is None:
            raise ValueError(f"bad latency spec {spec!r}: use uniform, normal or lognormal")
        if len(numbers) != 2:
            raise ValueError(f"bad latency spec {spec!r}: expected {kind}:A:B")
        a, b = numbers
        if kind == "uniform" and b < a:
            raise ValueError(f"bad latency spec {spec!r}: uniform needs low <= high")
        if kind == "lognormal" and a <= 0:
            raise ValueError(f"bad latency spec {spec!r}: lognormal median must be > 0")
        return cls(kind, a, b)

    def sample_ms(self, rng: random.Random) -> float:
        """One latency draw in milliseconds, never negative."""
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        # lognormvariate takes mu of the underlying normal; ln(median) makes `a` the median.
        return rng.lognormvariate(math.log(self.a), self.b)


class SimSettings(BaseModel):
    """Configuration of the simulated provider; also the schema of PATCH /_sim/config."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(0, ge=0, le=65535, description="TCP port; 0 picks a free port.")
    latency: str = Field(
        "0",
        description=(
            "Simulated latency in ms: `50` fixed, `uniform:20:80`, `normal:50:10`, "
            "`lognormal:50:0.5` (median ms and sigma). Applies to success and error replies."
        ),
    )
    rate_429: float = Field(0.0, ge=0, le=1, description="Share of requests answered 429.")
    rate_500: float = Field(0.0, ge=0, le=1, description="Share of requests answered 500.")
    rate_503: float = Field(0.0, ge=0, le=1, description="Share of requests answered 503.")
    rate_timeout: float = Field(
        0.0, ge=0, le=1, description="Share of requests held for timeout_hold_s without a reply."
    )
    rate_malformed: float = Field(
        0.0, ge=0, le=1, description="Share of requests answered 200 with a body that is not JSON."
    )
    timeout_hold_s: float = Field(
        120.0, ge=0, description="How long a `timeout` outcome holds the request (beyond clients)."
    )
    retry_after_s: float = Field(1.0, ge=0, description="Retry-After sent with every 429.")
    max_concurrency: int = Field(
        0, ge=0, description="Requests in flight beyond this are answered 429; 0 is unlimited."
    )
    completion_tokens: int = Field(
        16, ge=0, description="Tokens in each reply, capped by the request's max_tokens."
    )
    require_api_key: bool = Field(
        False, description="Answer 401 invalid_api_key unless `Authorization: Bearer <api_key>`."
    )
    bill_abandoned: bool = Field(
        False,
        description="Count a successful call whose client hung up before the reply as served "
        "(billed), as providers bill requests they had started generating.",
    )
    api_key: str = Field("sk-sim-local", description="The key accepted when require_api_key.")
    rpm_limit: int = Field(
        0, ge=0, description="Requests per minute shown in x-ratelimit-* headers; 0 omits them."
    )
    tpm_limit: int = Field(
        0, ge=0, description="Tokens per minute shown in x-ratelimit-* headers; 0 omits them."
    )
    seed: int | None = Field(
        None, description="Seed of the fault and latency dice; unset draws a random one."
    )
    request_log_size: int = Field(
        10_000, ge=0, description="How many recent requests GET /_sim/requests keeps."
    )

    @field_validator("latency")
    @classmethod
    def _latency_parses(cls, value: str) -> str:
        LatencyDistribution.parse(value)
        return value.strip()

    @model_validator(mode="after")
    def _rates_fit(self) -> SimSettings:
        total = self.rate_429 + self.rate_500 + self.rate_503 + self.rate_timeout
        if total + self.rate_malformed > 1.0 + 1e-9:
            raise ValueError("the error rates add up to more than 1")
        return self

    def latency_distribution(self) -> LatencyDistribution:
        """The latency spec, parsed."""
        return LatencyDistribution.parse(self.latency)


def describe_errors(exc: ValidationError) -> str:
    """A validation failure as one readable line, e.g. `rate_429: Input should be <= 1`."""
    return "; ".join(
        f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )
