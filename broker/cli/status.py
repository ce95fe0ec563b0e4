"""`aibroker status`: queue depths and each deployment's load against its capacity."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

import redis
from rich.console import Console
from rich.table import Table

from broker.catalog import load_catalog
from broker.status import DeploymentStatus, QueueStatus, read_status


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `status` command."""
    parser = subparsers.add_parser("status", help="queues and deployments, live")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(func=run_command)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _limit(used: int, limit: int, factor: float) -> str:
    return f"{used:,} / {int(limit * factor):,} of {limit:,}" if limit else f"{used:,} / -"


def deployments_table(rows: list[DeploymentStatus]) -> Table:
    """One line per deployment."""
    table = Table(title="Deployments")
    for column in ("deployment", "model", "queued", "oldest", "in flight", "rpm", "tpm",
                   "health", "latency", "workers"):
        table.add_column(column, justify="left" if column in ("deployment", "model",
                                                              "health") else "right")
    for row in rows:
        table.add_row(row.name, row.model, f"{row.queue.depth:,}", _age(row.queue.oldest_age_s),
                      f"{row.in_flight} / {row.effective_concurrency} of {row.concurrency}",
                      _limit(row.rpm_used, row.rpm, row.factor),
                      _limit(row.tpm_used, row.tpm, row.factor), row.health,
                      "-" if row.latency_ms is None else f"{row.latency_ms:.0f} ms",
                      str(row.consumers) if row.consumers else "none")
    return table


def queues_table(queues: list[QueueStatus]) -> Table:
    """The gateway queues."""
    table = Table(title="Gateway queues")
    for column in ("queue", "queued", "oldest"):
        table.add_column(column)
    for queue in queues:
        table.add_row(queue.name, f"{queue.depth:,}", _age(queue.oldest_age_s))
    return table


def run_command(args: argparse.Namespace) -> int:
    """Print the broker's live state."""
    catalog = load_catalog()
    client = redis.Redis.from_url(catalog.broker.redis_url, decode_responses=True)
    queues, rows = read_status(client, catalog)
    if args.format == "json":
        json.dump({"queues": [asdict(q) for q in queues],
                   "deployments": [asdict(r) for r in rows]}, sys.stdout, indent=2)
        print()
        return 0
    console = Console()
    console.print(queues_table(queues))
    console.print(deployments_table(rows))
    return 0
