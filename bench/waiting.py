"""Waiting for many jobs cheaply: poll the oldest pending ids, rescan all now and then."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from bench.progress import Ticker, log

T = TypeVar("T")
Fetch = Callable[[list[str]], Sequence[T | None]]


def _scan(fetch: Fetch[T], ids: list[str], chunk: int) -> tuple[list[T], list[str]]:
    found: list[T] = []
    still: list[str] = []
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        for job_id, item in zip(part, fetch(part), strict=True):
            if item is None:
                still.append(job_id)
            else:
                found.append(item)
    return found, still


def poll_until_done(fetch: Fetch[T], ids: list[str], *, stall_s: float, budget_s: float,
                    ticker: Ticker | None = None, window: int = 1000, interval_s: float = 0.1,
                    full_every: int = 20) -> tuple[list[T], list[str]]:
    """Fetch results until all are in, none arrives for `stall_s`, or `budget_s` is spent.

    Jobs finish roughly in submission order, so each poll reads only the oldest `window`
    pending ids (one round trip) and every `full_every`-th poll reads them all: the
    producer's polling stays a small, fixed cost however many jobs are pending.
    Returns the results found and the ids still unfinished.
    """
    pending = list(ids)
    found: list[T] = []
    started = last_progress = time.monotonic()
    polls = 0
    while pending:
        polls += 1
        scope = pending if polls % full_every == 0 else pending[:window]
        got, still = _scan(fetch, scope, window)
        if got:
            found += got
            last_progress = time.monotonic()
            pending = still + pending[len(scope):]
        if ticker is not None:
            ticker.update(len(found))
        if not pending:
            break
        now = time.monotonic()
        if now - last_progress > stall_s:
            found_late, pending = _scan(fetch, pending, window)
            found += found_late
            if pending:
                log(f"  no result for {stall_s:.0f} s: {len(pending):,} jobs never finished")
                break
        elif now - started > budget_s:
            log(f"  time budget of {budget_s:.0f} s spent: {len(pending):,} jobs unfinished")
            break
        time.sleep(interval_s)
    return found, pending
