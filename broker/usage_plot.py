"""`aibroker usage --plot`: tokens and cost over time per model, drawn to a PNG.

matplotlib is imported only here and only when a plot is asked for, with the Agg backend
(no display needed), so the rest of the CLI does not depend on it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.errors import ConfigError
from broker.ledger import UsageRow

PlotPoints = dict[str, list[tuple[datetime, int, float]]]


def bucket_time(bucket: str) -> datetime:
    """The UTC start of a day (YYYYMMDD) or hour (YYYYMMDDHH) bucket."""
    return datetime.strptime(bucket, "%Y%m%d%H" if len(bucket) == 10 else "%Y%m%d").replace(
        tzinfo=UTC)


def series(rows: list[UsageRow], time_dimension: str) -> PlotPoints:
    """Per model, (time, tokens, cost in USD) points in time order."""
    points: dict[str, dict[datetime, list[float]]] = defaultdict(dict)
    for row in rows:
        when = bucket_time(row.group[time_dimension])
        tokens, cost = points[row.group["model"]].get(when, [0, 0.0])
        points[row.group["model"]][when] = [tokens + row.total_tokens, cost + row.cost_usd]
    return {model: [(when, int(v[0]), v[1]) for when, v in sorted(by_time.items())]
            for model, by_time in sorted(points.items())}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_usage(rows: list[UsageRow], path: str | Path, time_dimension: str = "day",
               title: str = "Token usage and cost per model") -> Path:
    """Draw tokens (top) and cost (bottom) over time, one line per model; returns the path."""
    plt = _pyplot()
    data = series(rows, time_dimension)
    figure, (tokens_axis, cost_axis) = plt.subplots(2, 1, figsize=(10, 7), sharex=True,
                                                    constrained_layout=True)
    for model, points in data.items():
        times = [when for when, _, _ in points]
        tokens_axis.plot(times, [tokens for _, tokens, _ in points], marker="o", label=model)
        cost_axis.plot(times, [cost for _, _, cost in points], marker="o", label=model)
    unit = "hour" if time_dimension == "hour" else "day"
    tokens_axis.set_ylabel(f"tokens per {unit}")
    cost_axis.set_ylabel(f"cost per {unit} (USD)")
    cost_axis.set_xlabel(f"UTC {unit}")
    tokens_axis.set_title(title)
    for axis in (tokens_axis, cost_axis):
        axis.grid(True, alpha=0.3)
        if data:
            axis.legend(title="model", loc="upper left")
    if not data:
        tokens_axis.text(0.5, 0.5, "no usage in this range", ha="center", va="center",
                         transform=tokens_axis.transAxes)
    figure.autofmt_xdate()
    target = Path(path)
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target
