"""`aibroker demo`: the whole broker end to end on this machine, then a usage report."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from broker.catalog import Catalog
from broker.cli.usage import usage_table
from broker.client import Client
from broker.cluster import LocalCluster
from broker.demo import demo_catalog, demo_keys, demo_workload
from broker.ledger import UsageRow, read_usage
from broker.localstack import EmbeddedRedis, redis_reachable
from broker.schemas import JobResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` command."""
    parser = subparsers.add_parser("demo", help="run the broker end to end on this machine")
    parser.add_argument("--latency", default="normal:50:15",
                        help="simulated upstream latency spec (ms)")
    parser.add_argument("--rate-429", type=float, default=0.02,
                        help="share of upstream calls answered 429 (retried)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the workers' and provider's logs, and print where")
    parser.set_defaults(func=run_command)


@contextlib.contextmanager
def _work_dir(keep: bool) -> Iterator[str]:
    """A temporary directory for the run, removed afterwards unless its logs are to be kept."""
    if keep:
        yield tempfile.mkdtemp(prefix="aibroker-demo-")
        return
    with tempfile.TemporaryDirectory(prefix="aibroker-demo-") as tmp:
        yield tmp


@contextlib.contextmanager
def _redis(console: Console) -> Iterator[str]:
    url = os.environ.get("AIBROKER_REDIS_URL")
    if url and redis_reachable(url):
        console.print(f"[dim]using Redis at {url} (AIBROKER_REDIS_URL)[/dim]")
        yield url
        return
    with EmbeddedRedis() as server:
        console.print(f"[dim]started a private redis-server on port {server.port}[/dim]")
        yield server.url


def _progress(console: Console) -> Progress:
    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console)


def _ledger_totals(client: Client) -> dict[tuple[str, str], UsageRow]:
    return {(r.group["tenant"], r.group["model"]): r
            for r in read_usage(client.redis, by=("tenant", "model"))}


def _delta(before: dict[tuple[str, str], UsageRow],
           after: dict[tuple[str, str], UsageRow]) -> list[UsageRow]:
    rows = []
    for key, row in after.items():
        old = before.get(key)
        if old is not None:
            row.requests -= old.requests
            row.prompt_tokens -= old.prompt_tokens
            row.completion_tokens -= old.completion_tokens
            row.cost_nanousd -= old.cost_nanousd
        if row.requests:
            rows.append(row)
    return rows


def _status_table(results: list[JobResult]) -> Table:
    table = Table(title="Jobs")
    table.add_column("status")
    table.add_column("reason")
    table.add_column("jobs", justify="right")
    counts = Counter((r.status.value, r.error.code if r.error else "") for r in results)
    for (status, reason), count in sorted(counts.items()):
        table.add_row(status, reason, str(count))
    return table


def _lost_calls(client: Client) -> int:
    return sum(r.lost_in_flight for r in read_usage(client.redis, by=("deployment",)))


def _reconcile(console: Console, results: list[JobResult], ledger: list[UsageRow],
               served: dict[str, int], lost: int) -> bool:
    job_tokens = sum(r.usage.total_tokens for r in results)
    ledger_tokens = sum(r.total_tokens for r in ledger)
    # A billed call is a job's served reply; the ledger's `requests` also counts jobs that
    # failed after calling upstream, whose calls the provider never served.
    billed = sum(1 for r in results if r.usage.total_tokens > 0)
    upstream_tokens = served["total_tokens"]
    # Calls lost in flight were served but never billed: their tokens are only estimated.
    tokens_ok = upstream_tokens == ledger_tokens if not lost else upstream_tokens > ledger_tokens
    ok = job_tokens == ledger_tokens and tokens_ok and served["requests"] == billed + lost
    mark = "[green]reconciled[/green]" if ok else "[red]MISMATCH[/red]"
    console.print(f"{mark}: per-job sum {job_tokens:,} tokens = ledger {ledger_tokens:,} = "
                  f"upstream served {upstream_tokens:,}; upstream served "
                  f"{served['requests']:,} calls = billed {billed:,} + lost in flight {lost:,}")
    return ok


def _served_usage(cluster: LocalCluster) -> dict[str, int]:
    stats = cluster.upstream_stats()
    usage = stats["usage_total"]
    return {"total_tokens": int(usage["total_tokens"]), "requests": int(usage["requests"])}


def _start(cluster: LocalCluster, args: argparse.Namespace,
           keys: dict[str, str]) -> Catalog:
    upstream = cluster.start_upstream("upstream", "--latency", args.latency,
                                      "--rate-429", str(args.rate_429), "--retry-after-s", "0.2",
                                      "--seed", "7", "--bill-abandoned")
    catalog = cluster.write_catalog(demo_catalog(upstream, keys))
    cluster.start_workers()
    return catalog


def run_command(args: argparse.Namespace) -> int:
    """Start everything, run the workload, report, and stop everything."""
    console = Console()
    # A worker that exits is restarted by the local supervisor: say so, one line each.
    supervisor = logging.getLogger("aibroker.localstack")
    supervisor.addHandler(RichHandler(console=console, show_path=False))
    supervisor.propagate = False
    keys = demo_keys()
    workload = demo_workload(keys)
    with (_work_dir(args.keep_logs) as tmp, _redis(console) as url,
          LocalCluster(Path(tmp), url) as cluster):
        with console.status("starting the simulated provider and workers"):
            catalog = _start(cluster, args, keys)
        console.print(f"[dim]{len(catalog.deployments)} deployments, "
                      f"{len(catalog.tenants)} tenants; logs in {cluster.procs.log_dir}[/dim]")
        with Client(catalog) as client:
            before, lost_before = _ledger_totals(client), _lost_calls(client)
            started = time.monotonic()
            with _progress(console) as progress:
                task = progress.add_task("submitting", total=len(workload))
                handles = client.submit_many(workload,
                                             progress=lambda n: progress.advance(task, n))
                task = progress.add_task("completing", total=len(handles))
                results = client.wait_all(handles, timeout=300,
                                          progress=lambda n: progress.advance(task, n))
            elapsed = time.monotonic() - started
            ledger = _delta(before, _ledger_totals(client))
            lost = _lost_calls(client) - lost_before
        console.print(_status_table(results))
        console.print(usage_table(ledger, ("tenant", "model"), "Token usage (this run)"))
        console.print(f"{len(results)} jobs in {elapsed:.1f} s")
        ok = _reconcile(console, results, ledger, _served_usage(cluster), lost)
        if args.keep_logs:
            console.print(f"logs kept in {cluster.procs.log_dir}")
    return 0 if ok else 1
