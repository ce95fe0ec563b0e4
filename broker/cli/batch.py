"""`aibroker batch`: submit an OpenAI Batch JSONL file, follow it, fetch its results, cancel it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from broker.catalog import load_catalog
from broker.cli.args import positive_int, positive_seconds
from broker.client import Client
from broker.errors import ValidationError
from broker.schemas import Batch, BatchStatus

SHOWN_BAD_LINES = 50


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `batch` command and its sub-commands."""
    parser = subparsers.add_parser("batch", help="OpenAI Batch JSONL files run as jobs")
    commands = parser.add_subparsers(dest="batch_command", required=True, metavar="ACTION")
    submit = commands.add_parser("submit", help="validate and queue a JSONL file")
    submit.add_argument("file", type=Path)
    submit.add_argument("--wait", action="store_true", help="then follow it to the end")
    submit.add_argument("--skip-invalid", action="store_true",
                        help="run the valid lines; bad ones go to the errors output")
    submit.add_argument("--completion-window", default="24h", help="e.g. 24h, 90m (default 24h)")
    submit.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--idempotency-key", help="resubmitting with it returns the same batch")
    submit.set_defaults(func=run_submit)
    for name, func, text in (("status", run_status, "show a batch"),
                             ("wait", run_wait, "follow a batch with a progress bar"),
                             ("cancel", run_cancel, "stop a batch's queued jobs")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("batch_id")
        sub.set_defaults(func=func)
    results = commands.add_parser("results", help="write the output and errors JSONL files")
    results.add_argument("batch_id")
    results.add_argument("-o", "--output", type=Path, required=True)
    results.add_argument("--errors", type=Path, help="default: OUTPUT with .errors.jsonl")
    results.set_defaults(func=run_results)
    listing = commands.add_parser("list", help="the newest batches")
    listing.add_argument("--limit", type=positive_int, default=20)
    listing.set_defaults(func=run_list)
    for sub in (submit, listing, *(commands.choices[n] for n in ("status", "wait", "cancel",
                                                                   "results"))):
        sub.add_argument("--api-key-env", default="AIBROKER_API_KEY",
                         help="variable holding the tenant key (required to submit; "
                              "elsewhere it limits what you see to that tenant's batches)")
        sub.add_argument("--format", choices=("table", "json"), default="table")
    for sub in (submit, commands.choices["wait"]):
        sub.add_argument("--timeout", type=positive_seconds, default=None,
                         help="seconds to wait at most")


def _key(args: argparse.Namespace, required: bool = False) -> str | None:
    key = os.environ.get(args.api_key_env) or None
    if required and key is None:
        raise ValidationError(f"set the tenant key in ${args.api_key_env}")
    return key


def _metadata(pairs: list[str]) -> dict[str, str]:
    bad = [pair for pair in pairs if "=" not in pair]
    if bad:
        raise ValidationError(f"--metadata takes KEY=VALUE, not {bad[0]!r}")
    return dict(pair.split("=", 1) for pair in pairs)


def batch_table(batch: Batch) -> Table:
    """One batch as a two-column table."""
    table = Table(title=f"Batch {batch.id}", show_header=False)
    counts = batch.request_counts
    rows = [("status", batch.status.value), ("input", batch.input_file or "-"),
            ("requests", f"{counts.total:,} total, {counts.completed:,} completed, "
                         f"{counts.failed:,} failed"),
            ("by status", ", ".join(f"{k} {v:,}" for k, v in sorted(batch.by_status.items()))
             or "-"),
            ("refused lines", f"{batch.errors.total:,}"),
            ("tokens", f"{batch.usage.prompt_tokens:,} prompt + "
                       f"{batch.usage.completion_tokens:,} completion"),
            ("cost (USD)", f"{batch.cost_usd:.6f}"), ("window", batch.completion_window)]
    for name, value in rows:
        table.add_row(name, value)
    return table


def bad_lines_table(batch: Batch) -> Table:
    """The refused lines, by line number."""
    table = Table(title=f"Refused lines ({batch.errors.total:,})")
    for column in ("line", "custom_id", "code", "reason"):
        table.add_column(column)
    for entry in batch.errors.data[:SHOWN_BAD_LINES]:
        table.add_row(str(entry.line or "-"), entry.custom_id or "-", entry.code, entry.message)
    return table


def _show(batch: Batch, args: argparse.Namespace, console: Console) -> None:
    if args.format == "json":
        sys.stdout.write(batch.model_dump_json(indent=2) + "\n")
        return
    console.print(batch_table(batch))
    if batch.errors.total:
        console.print(bad_lines_table(batch))
        if batch.errors.total > SHOWN_BAD_LINES:
            console.print(f"all of them: aibroker batch results {batch.id} -o out.jsonl "
                          "--errors errors.jsonl")


def _exit_code(batch: Batch) -> int:
    return 0 if batch.status in (BatchStatus.IN_PROGRESS, BatchStatus.COMPLETED) else 1


def follow(client: Client, batch_id: str, api_key: str | None, timeout: float | None,
           console: Console) -> Batch:
    """Wait for a batch with a live bar: done/total, rate, ETA and failures."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>8.1f} jobs/s"), TextColumn("ETA"),
               TimeRemainingColumn(), TextColumn("failed {task.fields[failed]:,}"),
               TimeElapsedColumn())
    started, first_done = time.monotonic(), None
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(batch_id, total=None, rate=0.0, failed=0)

        def show(batch: Batch) -> None:
            nonlocal first_done
            first_done = batch.done if first_done is None else first_done
            rate = (batch.done - first_done) / max(time.monotonic() - started, 1e-6)
            bar.update(task, total=batch.request_counts.total or None, completed=batch.done,
                       rate=rate, failed=batch.request_counts.failed,
                       description=f"{batch.id} {batch.status.value}")

        return client.batches.wait(batch_id, timeout=timeout, progress=show, api_key=api_key)


def run_submit(args: argparse.Namespace) -> int:
    """Validate and queue a batch file; with --wait follow it to the end."""
    api_key = _key(args, required=True)
    assert api_key is not None
    console = Console(stderr=args.format == "json")
    with Client(load_catalog()) as client:
        with Progress(TextColumn("validating"), BarColumn(), DownloadColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("validating", total=None)
            batch = client.batches.create(
                args.file, api_key=api_key, completion_window=args.completion_window,
                metadata=_metadata(args.metadata), idempotency_key=args.idempotency_key,
                skip_invalid=args.skip_invalid,
                progress=lambda done, size: bar.update(task, completed=done, total=size))
        if args.wait and not batch.status.terminal:
            batch = follow(client, batch.id, api_key, args.timeout, console)
    _show(batch, args, console)
    return _exit_code(batch)


def run_status(args: argparse.Namespace) -> int:
    """Show one batch."""
    with Client(load_catalog()) as client:
        batch = client.batches.retrieve(args.batch_id, _key(args))
    _show(batch, args, Console())
    return 0


def run_wait(args: argparse.Namespace) -> int:
    """Follow a batch to its end with a progress bar."""
    console = Console(stderr=args.format == "json")
    with Client(load_catalog()) as client:
        batch = follow(client, args.batch_id, _key(args), args.timeout, console)
    _show(batch, args, console)
    return _exit_code(batch)


def run_cancel(args: argparse.Namespace) -> int:
    """Cancel a batch: its jobs not yet calling upstream end `cancelled`."""
    with Client(load_catalog()) as client:
        batch = client.batches.cancel(args.batch_id, _key(args))
    _show(batch, args, Console())
    return 0


def run_results(args: argparse.Namespace) -> int:
    """Stream the output lines and error lines into two JSONL files."""
    errors_path = args.errors or args.output.with_name(
        args.output.name.removesuffix(".jsonl") + ".errors.jsonl")
    written = {True: 0, False: 0}
    with Client(load_catalog()) as client, args.output.open("w", encoding="utf-8") as out, \
            errors_path.open("w", encoding="utf-8") as err:
        for line in client.batches.results(args.batch_id, _key(args)):
            (out if line.ok else err).write(line.to_json() + "\n")
            written[line.ok] += 1
    message = (f"{written[True]:,} output lines -> {args.output}; "
               f"{written[False]:,} error lines -> {errors_path}")
    Console(stderr=args.format == "json").print(message)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """The newest batches, one line each."""
    with Client(load_catalog()) as client:
        batches = client.batches.list(api_key=_key(args), limit=args.limit)
    if args.format == "json":
        sys.stdout.write("[" + ",".join(b.model_dump_json() for b in batches) + "]\n")
        return 0
    table = Table(title="Batches")
    for column in ("id", "status", "created (UTC)", "total", "completed", "failed", "cost (USD)"):
        table.add_column(column)
    for b in batches:
        table.add_row(b.id, b.status.value,
                      time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(b.created_at)),
                      f"{b.request_counts.total:,}", f"{b.request_counts.completed:,}",
                      f"{b.request_counts.failed:,}", f"{b.cost_usd:.6f}")
    Console().print(table)
    return 0
