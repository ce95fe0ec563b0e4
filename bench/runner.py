"""The bench runner: parse the command line, run the scenarios, write the reports."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from bench import meta, redisstats, report
from bench.config import Sizes
from bench.harness import infra
from bench.progress import log
from bench.scenarios import SCENARIOS, Context, get
from bench.snapshot import sources_snapshot

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of `python -m bench`."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the broker against baselines on a private Redis and a "
                    "simulated provider; writes JSON, markdown and PNG charts.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke sizes: seconds per scenario, figures only indicative")
    parser.add_argument("--only", default="", metavar="SCENARIO,...",
                        help=f"run only these scenarios ({', '.join(SCENARIOS)})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for the results (default: bench/results)")
    parser.add_argument("--profile", action="store_true",
                        help="record py-spy profiles of the broker processes during the "
                             "throughput run (perturbs its figures; needs py-spy)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the worker and Redis logs directory after the run")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(SCENARIOS)}")
    args.scenarios = [name for name in SCENARIOS if not chosen or name in chosen]
    args.out = args.out.resolve()
    return args


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the context managers: children get stopped


def run_scenarios(names: list[str], sizes: Sizes, work_dir: Path, facts: dict[str, Any],
                  profile: bool = False) -> dict[str, dict[str, Any]]:
    """Run each scenario in order; a failing one is recorded and the rest still run."""
    results: dict[str, dict[str, Any]] = {}
    with sources_snapshot(work_dir), infra(work_dir) as shared:
        facts["redis"] = redisstats.version(shared.redis)
        ctx = Context(shared, sizes, results, profile)
        for name in names:
            started = time.monotonic()
            try:
                results[name] = get(name)(ctx)
            except Exception as exc:  # one broken scenario must not hide the others
                log(f"{name} FAILED: {type(exc).__name__}: {exc}")
                traceback.print_exc(file=sys.stderr)
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results[name]["duration_s"] = round(time.monotonic() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios and write the reports; 1 if any scenario failed."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    sizes = Sizes.smoke() if args.quick else Sizes.full()
    facts = meta.collect()
    work_dir = Path(tempfile.mkdtemp(prefix="aibroker-bench-"))
    log(f"{'quick' if args.quick else 'full'} run of {', '.join(args.scenarios)} on "
        f"{facts['host']} ({facts['cpus']} CPUs); logs in {work_dir}")
    started = time.monotonic()
    failed = True
    try:
        results = run_scenarios(args.scenarios, sizes, work_dir, facts, args.profile)
        failed = any("error" in result for result in results.values())
    finally:
        if failed or args.keep_logs or args.profile:
            log(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    facts["duration_s"] = round(time.monotonic() - started, 1)
    facts["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    facts["profiled"] = args.profile
    complete = not args.quick and not args.profile and args.scenarios == list(SCENARIOS)
    paths = report.write(args.out, facts, sizes, results, complete=complete)
    for path in paths:
        log(f"wrote {path}")
    return 1 if failed else 0
