"""`aibroker worker` (start one worker) and `aibroker workers plan` (what the catalog implies)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import NoReturn

from broker.catalog import EnvOverrides, load_catalog
from broker.cli.args import positive_int
from broker.errors import InvalidArgument
from broker.workerplan import WorkerSpec, gateway_worker, model_worker, plan


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `worker` and `workers` commands."""
    worker = subparsers.add_parser("worker", help="start one Celery worker for a stage")
    worker.add_argument("--stage", choices=("gateway", "policy", "route", "model"),
                        required=True, help="policy/route/gateway share one worker type")
    worker.add_argument("--deployment", help="the deployment a model worker serves")
    worker.add_argument("--concurrency", type=positive_int,
                        help="pool width (default: from catalog)")
    worker.add_argument("--hosts", type=positive_int, default=1,
                        help="hosts sharing the deployment; the pool gets capacity / hosts")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=run_worker)

    workers = subparsers.add_parser("workers", help="worker plans derived from the catalog")
    actions = workers.add_subparsers(dest="action", required=True)
    plan_parser = actions.add_parser("plan", help="print the worker commands the catalog implies")
    plan_parser.add_argument("--hosts", type=positive_int, default=1,
                             help="hosts to split capacity over (at least 1)")
    plan_parser.set_defaults(func=run_plan)


def _spec_for(args: argparse.Namespace) -> WorkerSpec:
    catalog = load_catalog()
    if args.stage == "model":
        if not args.deployment:
            raise InvalidArgument("worker: --stage model needs --deployment")
        if args.deployment not in catalog.deployments:
            known = ", ".join(sorted(catalog.deployments))
            raise InvalidArgument(f"worker: unknown deployment {args.deployment!r} "
                                  f"(known: {known})")
        spec = model_worker(catalog, args.deployment, args.hosts)
    else:
        spec = gateway_worker(catalog)
        if args.stage in ("policy", "route"):
            spec = WorkerSpec(args.stage, (args.stage,), spec.concurrency)
    if args.concurrency:
        spec = WorkerSpec(spec.name, spec.queues, args.concurrency, spec.pool)
    return spec


def run_worker(args: argparse.Namespace) -> NoReturn:
    """Replace this process with the Celery worker for the stage."""
    command = _spec_for(args).command(sys.executable, args.loglevel)
    os.execv(command[0], command)  # noqa: S606 - the worker replaces this process


def plan_environment(env: EnvOverrides) -> list[str]:
    """`NAME=value` words a worker needs to read the same catalog and settings as this plan."""
    values = env.model_dump()
    return [f"AIBROKER_{name.upper()}={value}" for name, value in values.items()
            if value is not None]


def run_plan(args: argparse.Namespace) -> int:
    """Print one command per worker process, per host."""
    env = EnvOverrides()
    catalog = load_catalog()
    prefix = plan_environment(env)
    print(f"# {len(catalog.deployments)} deployments; commands for each of {args.hosts} host(s)")
    for spec in plan(catalog, args.hosts):
        queues = ",".join(spec.queues)
        print(f"# {spec.name}: queues {queues}, pool {spec.pool} x{spec.concurrency}")
        print(shlex.join([*prefix, "celery", "-A", "broker.app", *spec.celery_args()]))
    return 0
