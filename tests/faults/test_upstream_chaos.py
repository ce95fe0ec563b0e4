"""A provider answering 429s, 5xx, timeouts and bad JSON at scale: every job ends, and every
call is accounted for three ways (per-job usage, the ledger, the provider's own count)."""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path
from typing import Any

from rich.console import Console

from broker import errors
from broker.cli.demo import _delta, _ledger_totals, _lost_calls, _reconcile, _served_usage
from broker.cluster import LocalCluster
from broker.localstack import EmbeddedRedis
from broker.schemas import JobResult, JobStatus
from tests.support import chat_job, client_for, make_catalog, wait_until

JOBS = int(os.environ.get("AIBROKER_CHAOS_JOBS", "1000"))
TIMEOUT_S = 1.0
# Two attempts a deployment: about 9% of jobs exhaust one and fall back to the other, and
# about 0.8% (0.3 ** 4) exhaust both and fail.
ATTEMPTS = 2
# Each outcome's share of calls, and the code the model stage gives it.
MIX = {"429": 0.10, "503": 0.10, "timeout": 0.05, "malformed": 0.05}
CODE_OF = {"429": "upstream_rate_limited", "503": "upstream_unavailable",
           "timeout": "upstream_timeout", "malformed": "upstream_bad_response"}
# Successes come back well inside TIMEOUT_S, and a `timeout` outcome holds the call far
# beyond it: no reply races the client's timeout.
UPSTREAM_ARGS = (
    "--latency", "uniform:5:40", "--seed", "11", "--retry-after-s", "0.05",
    "--rate-429", str(MIX["429"]), "--rate-503", str(MIX["503"]),
    "--rate-timeout", str(MIX["timeout"]), "--rate-malformed", str(MIX["malformed"]),
    "--timeout-hold-s", "600",
    # A call whose client hung up counts as served only when its reply was a success the
    # provider had started generating (as providers bill). Here the only calls abandoned
    # are the held `timeout` outcomes, which never produce a reply: the provider serves
    # (and bills) nothing for them, and the broker closes their attempts as unserved, so
    # both sides agree call for call. With no worker lost, nothing is lost in flight, and
    # the reconciliation is exact in tokens as well as in calls.
    "--bill-abandoned",
)


def _catalog(upstream: str) -> dict[str, Any]:
    """chat-small on two deployments of one upstream; few attempts, so fallbacks happen."""
    catalog = make_catalog(
        upstream, visibility_timeout_s=120, model_task_time_limit_s=45,
        retry={"max_attempts": ATTEMPTS, "backoff_base_s": 0.02, "backoff_max_s": 0.2},
        capacity={"health": {"cooldown_s": 1.0}})
    for spec in catalog["models"]["chat-small"]["deployments"]:
        spec["timeout_s"] = TIMEOUT_S
    return catalog


@contextmanager
def _chaos_cluster(tmp: Path) -> Iterator[LocalCluster]:
    with EmbeddedRedis() as server, LocalCluster(tmp, server.url) as cluster:
        upstream = cluster.start_upstream("upstream", *UPSTREAM_ARGS)
        cluster.write_catalog(_catalog(upstream))
        cluster.start_workers()
        yield cluster


def _codes_of_the_tree() -> set[str]:
    found: set[str] = set()
    todo: list[type[errors.BrokerError]] = [errors.BrokerError]
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo.extend(cls.__subclasses__())
    return found


def _attempt_codes(results: list[JobResult]) -> Counter[str]:
    return Counter(a.error_code or "ok" for r in results for a in r.route.attempts)


def _check_routes(results: list[JobResult]) -> None:
    retried = [r for r in results if len(r.route.attempts) > 1]
    fell_back = [r for r in results if len({a.deployment for a in r.route.attempts}) > 1]
    assert len(retried) > JOBS // 10, len(retried)
    assert fell_back, "no job fell back to the other deployment"
    for r in results:
        assert len(r.route.attempts) <= 2 * ATTEMPTS  # two deployments
        if r.status is JobStatus.SUCCEEDED:
            *before, last = r.route.attempts
            assert last.status == "ok" and last.deployment == r.route.deployment
            assert all(a.status == "error" for a in before)
        elif r.route.attempts:
            # The last call's error, unless open circuits turned the job away afterwards.
            assert r.error is not None and r.error.code in {
                r.route.attempts[-1].error_code, "upstream_unavailable"}, r.error
    for r in fell_back:
        # A fallback never returns to a deployment the job already left.
        blocks = [name for name, _ in groupby(a.deployment for a in r.route.attempts)]
        assert len(blocks) == len(set(blocks)), blocks


def test_a_mix_of_upstream_failures_at_scale_reconciles_three_ways(tmp_path: Path) -> None:
    with _chaos_cluster(tmp_path) as cluster, client_for(cluster) as client:
        started = time.monotonic()
        handles = client.submit_many([chat_job("chat-small", "alpha", f"chaos job {i}")
                                      for i in range(JOBS)])
        results = client.wait_all(handles, timeout=240)
        elapsed = time.monotonic() - started
        ledger = _delta({}, _ledger_totals(client))
        lost = _lost_calls(client)
        calls = _attempt_codes(results)
        # A hung-up call is logged by the provider when its handler is cancelled, a moment
        # after the client gave up: wait until it has logged every call the jobs made.
        stats = wait_until(
            lambda: (s := cluster.upstream_stats())["requests_total"] == calls.total() and s,
            30, "the provider has logged every call")
        served = _served_usage(cluster)
    print(f"{JOBS} jobs in {elapsed:.1f} s; {dict(Counter(r.status for r in results))}; "
          f"calls {dict(calls)}")

    assert len(results) == JOBS and all(r.status.terminal for r in results)
    statuses = Counter(r.status for r in results)
    assert set(statuses) <= {JobStatus.SUCCEEDED, JobStatus.FAILED}, statuses
    assert statuses[JobStatus.SUCCEEDED] > JOBS * 0.9, statuses
    failed = Counter(r.error.code for r in results if r.error is not None)
    assert failed and set(failed) <= _codes_of_the_tree() & set(CODE_OF.values()), failed
    # Every call the jobs record is one the provider saw, outcome for outcome.
    outcomes = stats["by_outcome"]
    assert calls == Counter({"ok": outcomes.get("ok", 0), **{
        CODE_OF[o]: n for o, n in outcomes.items() if o in CODE_OF}}), (calls, outcomes)
    assert all(calls[code] > 0 for code in CODE_OF.values()), calls
    _check_routes(results)

    line = io.StringIO()
    ok = _reconcile(Console(file=line, width=400), results, ledger, served, lost)
    assert ok, line.getvalue()
    assert lost == 0, line.getvalue()
    job_tokens = sum(r.usage.total_tokens for r in results)
    assert job_tokens == sum(r.total_tokens for r in ledger) == served["total_tokens"] > 0
    billed = [r for r in results if r.usage.total_tokens > 0]
    assert served["requests"] == len(billed) + lost == calls["ok"]
    # The ledger counts a request for every job that called upstream, served or not.
    called = [r for r in results if r.route.attempts]
    assert sum(r.requests for r in ledger) == len(called) >= len(billed)
