"""Reading the usage ledger: aggregates per tenant, model, deployment, batch and UTC day or hour.

The ledger script writes every billed job into day and hour hashes (fields
`tenant<TAB>model<TAB>deployment<TAB>metric`) and a batch job also into batch day and hour
hashes (fields led by the batch id). A report reads day hashes unless it groups by hour or
is bounded by times of day, and the batch hashes when it filters or groups by batch.

Calls the provider served that no job was billed for (a worker lost mid-call; see
workers/attempts.py) sit beside billed usage as `lost_*` metrics in the day and hour
hashes: estimated tokens and cost, never part of `requests` or of any budget.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import redis

from broker import keys

Dimension = Literal["tenant", "model", "deployment", "day", "hour", "batch"]
DIMENSIONS: tuple[Dimension, ...] = ("tenant", "model", "deployment", "day", "hour", "batch")
Bound = date | datetime  # a date covers its whole UTC day; a datetime its UTC hour
_PIPELINE_CHUNK = 500


@dataclass(slots=True)
class UsageRow:
    """Usage summed over one group."""

    group: dict[str, str]
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanousd: int = 0
    estimated: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    lost_in_flight: int = 0  # calls served upstream and never billed (estimates below)
    lost_prompt_tokens: int = 0
    lost_completion_tokens: int = 0
    lost_cost_nanousd: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_usd(self) -> float:
        """Cost in dollars."""
        return self.cost_nanousd / 1e9

    @property
    def lost_tokens(self) -> int:
        """Estimated tokens of the calls lost in flight."""
        return self.lost_prompt_tokens + self.lost_completion_tokens

    @property
    def lost_cost_usd(self) -> float:
        """Estimated cost of the calls lost in flight, in dollars."""
        return self.lost_cost_nanousd / 1e9

    def as_dict(self) -> dict[str, object]:
        """A flat mapping for CSV and JSON output."""
        return {**self.group, "requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "total_tokens": self.total_tokens,
                "cost_usd": round(self.cost_usd, 9), "estimated": self.estimated,
                "lost_in_flight": self.lost_in_flight, "lost_tokens": self.lost_tokens,
                "lost_cost_usd": round(self.lost_cost_usd, 9)}


def days_between(since: date, until: date) -> list[str]:
    """UTC day buckets (YYYYMMDD) from `since` to `until`, inclusive."""
    span = (until - since).days
    return [(since + timedelta(days=i)).strftime("%Y%m%d") for i in range(span + 1)]


def hours_between(since: datetime, until: datetime) -> list[str]:
    """UTC hour buckets (YYYYMMDDHH) from `since`'s hour to `until`'s hour, inclusive."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    stop = until.astimezone(UTC)
    count = int((stop - start).total_seconds() // 3600)
    return [(start + timedelta(hours=i)).strftime("%Y%m%d%H") for i in range(count + 1)]


def _as_datetime(bound: Bound, end: bool) -> datetime:
    if isinstance(bound, datetime):
        return bound if bound.tzinfo else bound.replace(tzinfo=UTC)
    moment = datetime(bound.year, bound.month, bound.day, tzinfo=UTC)
    return moment + timedelta(hours=23) if end else moment


def _as_date(bound: Bound) -> date:
    return bound.astimezone(UTC).date() if isinstance(bound, datetime) else bound


def buckets(since: Bound | None, until: Bound | None, hourly: bool) -> list[str]:
    """The day or hour buckets a report over [since, until] reads (default: today)."""
    today = datetime.now(UTC).date()
    if not hourly:
        return days_between(_as_date(since or today), _as_date(until or today))
    return hours_between(_as_datetime(since or today, end=False),
                         _as_datetime(until or datetime.now(UTC), end=True))


def _hashes(client: redis.Redis, names: list[str]) -> list[dict[Any, Any]]:
    found: list[dict[Any, Any]] = []
    for start in range(0, len(names), _PIPELINE_CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for name in names[start:start + _PIPELINE_CHUNK]:
                pipe.hgetall(name)
            found += pipe.execute()
    return found


def read_usage(client: redis.Redis, *, since: Bound | None = None, until: Bound | None = None,
               by: tuple[Dimension, ...] = ("tenant", "model"), tenant: str | None = None,
               model: str | None = None, deployment: str | None = None,
               batch: str | None = None) -> list[UsageRow]:
    """Usage grouped by the given dimensions and filtered by the given values."""
    hourly = "hour" in by or isinstance(since, datetime) or isinstance(until, datetime)
    of_batches = batch is not None or "batch" in by
    names = buckets(since, until, hourly)
    key_of = {(False, False): keys.usage_day, (False, True): keys.usage_hour,
              (True, False): keys.batch_usage_day, (True, True): keys.batch_usage_hour}[
                  (of_batches, hourly)]
    wanted = {"tenant": tenant, "model": model, "deployment": deployment, "batch": batch}
    rows: dict[tuple[str, ...], UsageRow] = {}
    totals: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for bucket, values in zip(names, _hashes(client, [key_of(n) for n in names]), strict=True):
        for raw_field, raw_value in values.items():
            name = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
            parts = name.split(keys.FIELD_SEP)
            lead = parts[0] if of_batches else "-"
            t, m, d, metric = parts[1:] if of_batches else parts
            facts = {"tenant": t, "model": m, "deployment": d, "batch": lead,
                     "day": bucket[:8], "hour": bucket}
            if any(value is not None and facts[dim] != value for dim, value in wanted.items()):
                continue
            group_key = tuple(facts[dim] for dim in by)
            if group_key not in rows:
                rows[group_key] = UsageRow(group={dim: facts[dim] for dim in by})
            totals[group_key][metric] += int(raw_value)
    for group_key, row in rows.items():
        metrics = totals[group_key]
        row.requests = metrics.get("requests", 0)
        row.prompt_tokens = metrics.get("prompt_tokens", 0)
        row.completion_tokens = metrics.get("completion_tokens", 0)
        row.cost_nanousd = metrics.get("cost_nanousd", 0)
        row.estimated = metrics.get("estimated", 0)
        row.lost_in_flight = metrics.get("lost_requests", 0)
        row.lost_prompt_tokens = metrics.get("lost_prompt_tokens", 0)
        row.lost_completion_tokens = metrics.get("lost_completion_tokens", 0)
        row.lost_cost_nanousd = metrics.get("lost_cost_nanousd", 0)
    return sorted(rows.values(), key=lambda r: tuple(r.group.values()))
