"""Reading the usage ledger: aggregates per tenant, model, deployment and UTC day or hour."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import redis

from broker import keys

Dimension = Literal["tenant", "model", "deployment", "day"]
DIMENSIONS: tuple[Dimension, ...] = ("tenant", "model", "deployment", "day")


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

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_usd(self) -> float:
        """Cost in dollars."""
        return self.cost_nanousd / 1e9

    def as_dict(self) -> dict[str, object]:
        """A flat mapping for CSV and JSON output."""
        return {**self.group, "requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "total_tokens": self.total_tokens,
                "cost_usd": round(self.cost_usd, 9), "estimated": self.estimated}


def days_between(since: date, until: date) -> list[str]:
    """UTC day buckets (YYYYMMDD) from `since` to `until`, inclusive."""
    span = (until - since).days
    return [(since + timedelta(days=i)).strftime("%Y%m%d") for i in range(span + 1)]


def read_usage(client: redis.Redis, *, since: date | None = None, until: date | None = None,
               by: tuple[Dimension, ...] = ("tenant", "model"), tenant: str | None = None,
               model: str | None = None) -> list[UsageRow]:
    """Usage grouped by the given dimensions, filtered by tenant and model."""
    today = datetime.now(UTC).date()
    day_names = days_between(since or today, until or today)
    with client.pipeline(transaction=False) as pipe:
        for day in day_names:
            pipe.hgetall(keys.usage_day(day))
        hashes = pipe.execute()
    rows: dict[tuple[str, ...], UsageRow] = {}
    totals: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, values in zip(day_names, hashes, strict=True):
        for raw_field, raw_value in values.items():
            name = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
            t, m, d, metric = name.split(keys.FIELD_SEP)
            if (tenant and t != tenant) or (model and m != model):
                continue
            facts = {"tenant": t, "model": m, "deployment": d, "day": day}
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
    return sorted(rows.values(), key=lambda r: tuple(r.group.values()))
