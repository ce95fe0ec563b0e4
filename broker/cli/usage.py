"""`aibroker usage`: the token and cost ledger as a table, CSV, JSON or a plot."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import redis
from rich.console import Console
from rich.table import Table

from broker import keys
from broker.catalog import load_catalog
from broker.errors import InvalidArgument
from broker.ledger import DIMENSIONS, Bound, Dimension, UsageRow, read_usage

PLOT_HOURLY_UP_TO = timedelta(days=3)  # longer ranges are drawn per day


def parse_bound(text: str) -> Bound:
    """YYYY-MM-DD (a whole UTC day) or an ISO time such as 2026-11-25T13 (its UTC hour)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text if len(text) != 13 else text + ":00")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH[:MM]") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `usage` command."""
    parser = subparsers.add_parser("usage", help="token usage and cost from the ledger")
    parser.add_argument("--since", type=parse_bound,
                        help="first UTC day (YYYY-MM-DD) or hour (YYYY-MM-DDTHH); default today")
    parser.add_argument("--until", type=parse_bound, help="last UTC day or hour; default now")
    parser.add_argument("--by", default="tenant,model",
                        help=f"comma-separated grouping from {','.join(DIMENSIONS)}")
    parser.add_argument("--tenant")
    parser.add_argument("--model")
    parser.add_argument("--deployment")
    parser.add_argument("--batch", help="only this batch's jobs")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw tokens and cost over time per model to this PNG")
    parser.set_defaults(func=run_command)


def parse_dimensions(text: str) -> tuple[Dimension, ...]:
    """Validated grouping dimensions."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [name for name in names if name not in DIMENSIONS]
    if bad or not names:
        raise InvalidArgument(f"usage: --by takes {', '.join(DIMENSIONS)}; got {text!r}")
    return names  # type: ignore[return-value]


def readable_bucket(dimension: str, value: str) -> str:
    """A ledger day (YYYYMMDD) or hour (YYYYMMDDHH) as ISO: 2026-12-02, 2026-12-02T05:00Z."""
    if dimension not in ("day", "hour") or not value.isdigit() or len(value) not in (8, 10):
        return value
    day = f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    return f"{day}T{value[8:]}:00Z" if dimension == "hour" else day


def readable(rows: list[UsageRow]) -> list[UsageRow]:
    """Rows whose day and hour groups read as ISO dates and times."""
    return [replace(row, group={dim: readable_bucket(dim, value)
                                for dim, value in row.group.items()}) for row in rows]


def usage_table(rows: list[UsageRow], by: tuple[str, ...], title: str = "Token usage") -> Table:
    """A rich table of usage rows with a total line."""
    table = Table(title=title)
    for dim in by:
        table.add_column(dim)
    for name in ("requests", "prompt", "completion", "total", "cost (USD)"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*(row.group[d] for d in by), f"{row.requests:,}", f"{row.prompt_tokens:,}",
                      f"{row.completion_tokens:,}", f"{row.total_tokens:,}",
                      f"{row.cost_usd:.6f}")
    table.add_section()
    table.add_row("total", *([""] * (len(by) - 1)), f"{sum(r.requests for r in rows):,}",
                  f"{sum(r.prompt_tokens for r in rows):,}",
                  f"{sum(r.completion_tokens for r in rows):,}",
                  f"{sum(r.total_tokens for r in rows):,}",
                  f"{sum(r.cost_usd for r in rows):.6f}")
    return table


def lost_table(rows: list[UsageRow], by: tuple[str, ...]) -> Table | None:
    """Calls served upstream that no job was billed for, apart from usage (None: none)."""
    lost = [row for row in rows if row.lost_in_flight]
    if not lost:
        return None
    table = Table(title="Lost in flight: served upstream, never billed (estimates)")
    for dim in by:
        table.add_column(dim)
    for name in ("calls", "est. tokens", "est. cost (USD)"):
        table.add_column(name, justify="right")
    for row in lost:
        table.add_row(*(row.group[d] for d in by), f"{row.lost_in_flight:,}",
                      f"{row.lost_tokens:,}", f"{row.lost_cost_usd:.6f}")
    table.add_section()
    table.add_row("total", *([""] * (len(by) - 1)), f"{sum(r.lost_in_flight for r in lost):,}",
                  f"{sum(r.lost_tokens for r in lost):,}",
                  f"{sum(r.lost_cost_usd for r in lost):.6f}")
    return table


def _batch_since(client: redis.Redis, batch_id: str, retention_days: int) -> Bound:
    """A batch's usage starts the day it was created (or as far back as the ledger goes)."""
    created = client.hget(keys.batch(batch_id), "created_at")
    if created:
        return datetime.fromtimestamp(float(str(created)), UTC).date()
    return datetime.now(UTC).date() - timedelta(days=retention_days)


def _plot(client: redis.Redis, args: argparse.Namespace, since: Bound | None) -> str:
    from broker.usage_plot import plot_usage  # matplotlib only when a plot is asked for

    start = since if isinstance(since, datetime) else datetime.combine(
        since or datetime.now(UTC).date(), datetime.min.time(), UTC)
    end = args.until if isinstance(args.until, datetime) else datetime.now(UTC)
    dimension: Dimension = "hour" if end - start <= PLOT_HOURLY_UP_TO else "day"
    rows = read_usage(client, since=since, until=args.until, by=("model", dimension),
                      tenant=args.tenant, model=args.model, deployment=args.deployment,
                      batch=args.batch)
    title = f"Usage of batch {args.batch}" if args.batch else "Token usage and cost per model"
    return str(plot_usage(rows, args.plot, dimension, title))


def run_command(args: argparse.Namespace) -> int:
    """Print the ledger in the chosen format (and draw it with --plot)."""
    by = parse_dimensions(args.by)
    catalog = load_catalog()
    client = redis.Redis.from_url(catalog.broker.redis_url, decode_responses=True)
    since = args.since
    if since is None and args.batch:
        since = _batch_since(client, args.batch, catalog.broker.usage_retention_days)
    rows = readable(read_usage(client, since=since, until=args.until, by=by, tenant=args.tenant,
                               model=args.model, deployment=args.deployment, batch=args.batch))
    if args.format == "json":
        json.dump([row.as_dict() for row in rows], sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        fields = [*by, "requests", "prompt_tokens", "completion_tokens", "total_tokens",
                  "cost_usd", "estimated", "lost_in_flight", "lost_tokens", "lost_cost_usd"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        writer.writerows(row.as_dict() for row in rows)
    else:
        console = Console()
        console.print(usage_table([row for row in rows if row.requests] or rows, by))
        lost = lost_table(rows, by)
        if lost is not None:
            console.print(lost)
    if args.plot:
        written = _plot(client, args, since)
        Console(stderr=args.format != "table").print(f"plot written to {written}")
    return 0
