"""Small statistics over samples: percentiles by linear interpolation."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, interpolated between neighbours."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """Count, mean, p50, p95, p99 and max of `values`."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": round(sum(values) / len(values), digits),
            "p50": round(percentile(values, 50), digits),
            "p95": round(percentile(values, 95), digits),
            "p99": round(percentile(values, 99), digits), "max": round(max(values), digits)}
