"""`aibroker audit`: the policy decisions, newest last (no prompt text is ever recorded)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from broker import keys
from broker.catalog import load_catalog
from broker.cli.args import positive_int


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `audit` command."""
    parser = subparsers.add_parser("audit", help="policy decisions from the audit stream")
    parser.add_argument("--tenant")
    parser.add_argument("--decision", choices=("admitted", "rejected"))
    parser.add_argument("--since", type=datetime.fromisoformat,
                        help="ISO time (UTC if no zone), e.g. 2026-11-25T09:00")
    parser.add_argument("--limit", type=positive_int, default=100,
                        help="newest N entries shown")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(func=run_command)


def _start_id(since: datetime | None) -> str:
    if since is None:
        return "-"
    stamp = since if since.tzinfo else since.replace(tzinfo=UTC)
    return str(int(stamp.timestamp() * 1000))


def read_audit(client: redis.Redis, *, tenant: str | None = None, decision: str | None = None,
               since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Matching entries, oldest first, at most `limit` (the newest), with their JSON types."""
    matched: list[dict[str, Any]] = []
    start = _start_id(since)
    while True:
        batch: list[tuple[str, dict[str, str]]] = client.xrange(  # type: ignore[assignment]
            keys.audit_stream(), min=start, max="+", count=1000)
        if not batch:
            break
        for entry_id, stored in batch:
            when = datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000, UTC)
            stamp = when.isoformat(timespec="milliseconds")
            for fields in json.loads(stored.get("decisions", "[]")):
                if tenant and fields.get("tenant") != tenant:
                    continue
                if decision and fields.get("decision") != decision:
                    continue
                matched.append({"time": stamp, **fields})
        start = "(" + batch[-1][0]
        matched = matched[-limit:]
    return matched


def run_command(args: argparse.Namespace) -> int:
    """Print the matching decisions."""
    catalog = load_catalog()
    client = redis.Redis.from_url(catalog.broker.redis_url, decode_responses=True)
    entries = read_audit(client, tenant=args.tenant, decision=args.decision, since=args.since,
                         limit=args.limit)
    if args.format == "json":
        json.dump(entries, sys.stdout, indent=2)
        print()
        return 0
    table = Table(title=f"Audit ({len(entries)} entries)")
    columns = ("time", "tenant", "model", "decision", "rule", "version", "input_tokens",
               "lane", "findings", "job")
    for column in columns:
        table.add_column(column)
    for entry in entries:
        table.add_row(*(str(entry.get(column, "")) for column in columns))
    Console().print(table)
    return 0
