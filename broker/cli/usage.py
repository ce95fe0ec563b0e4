"""`aibroker usage`: the token and cost ledger as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import date

import redis
from rich.console import Console
from rich.table import Table

from broker.catalog import load_catalog
from broker.ledger import DIMENSIONS, Dimension, UsageRow, read_usage


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `usage` command."""
    parser = subparsers.add_parser("usage", help="token usage and cost from the ledger")
    parser.add_argument("--since", type=date.fromisoformat, help="first UTC day (YYYY-MM-DD)")
    parser.add_argument("--until", type=date.fromisoformat, help="last UTC day (YYYY-MM-DD)")
    parser.add_argument("--by", default="tenant,model",
                        help=f"comma-separated grouping from {','.join(DIMENSIONS)}")
    parser.add_argument("--tenant")
    parser.add_argument("--model")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.set_defaults(func=run_command)


def parse_dimensions(text: str) -> tuple[Dimension, ...]:
    """Validated grouping dimensions."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [name for name in names if name not in DIMENSIONS]
    if bad or not names:
        raise SystemExit(f"aibroker usage: --by takes {', '.join(DIMENSIONS)}; got {text!r}")
    return names  # type: ignore[return-value]


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


def run_command(args: argparse.Namespace) -> int:
    """Print the ledger in the chosen format."""
    by = parse_dimensions(args.by)
    catalog = load_catalog()
    client = redis.Redis.from_url(catalog.broker.redis_url, decode_responses=True)
    rows = read_usage(client, since=args.since, until=args.until, by=by, tenant=args.tenant,
                      model=args.model)
    if args.format == "json":
        json.dump([row.as_dict() for row in rows], sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        fields = [*by, "requests", "prompt_tokens", "completion_tokens", "total_tokens",
                  "cost_usd", "estimated"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        writer.writerows(row.as_dict() for row in rows)
    else:
        Console().print(usage_table(rows, by))
    return 0
