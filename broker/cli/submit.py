"""`aibroker submit`: send one job (or a JSONL file of job bodies) and print the results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from broker.catalog import load_catalog
from broker.client import Client
from broker.errors import ValidationError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `submit` command."""
    parser = subparsers.add_parser("submit", help="submit a job and wait for its result")
    parser.add_argument("--model", help="logical model (for --prompt)")
    parser.add_argument("--prompt", help="a user message; or give --file")
    parser.add_argument("--file", help="JSONL of OpenAI request bodies, one job per line")
    parser.add_argument("--api-key-env", default="AIBROKER_API_KEY",
                        help="environment variable holding the tenant key")
    parser.add_argument("--priority", choices=("interactive", "batch"), default="interactive")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--no-wait", action="store_true", help="print job ids and return")
    parser.set_defaults(func=run_command)


def _bodies(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.file:
        bodies = []
        with open(args.file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    bodies.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValidationError(f"{args.file}:{number}: not JSON: {exc.msg}") from None
        return bodies
    if not (args.model and args.prompt):
        raise ValidationError("give --model and --prompt, or --file")
    return [{"model": args.model, "messages": [{"role": "user", "content": args.prompt}]}]


def run_command(args: argparse.Namespace) -> int:
    """Submit, wait, and print one JSON result per line."""
    api_key = os.environ.get(args.api_key_env)
    if not api_key:
        raise ValidationError(f"set the tenant key in ${args.api_key_env}")
    jobs = [{**body, "api_key": api_key, "priority": args.priority} for body in _bodies(args)]
    with Client(load_catalog()) as client:
        handles = client.submit_many(jobs)
        if args.no_wait:
            for handle in handles:
                print(handle.id)
            return 0
        results = client.wait_all(handles, timeout=args.timeout)
    for result in results:
        sys.stdout.write(result.model_dump_json() + "\n")
    return 0 if all(r.ok for r in results) else 1
