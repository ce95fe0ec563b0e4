"""`aibroker submit`: send one job (or a JSONL file of job bodies) and print the results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from broker.catalog import load_catalog
from broker.cli.args import positive_seconds
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
    parser.add_argument("--timeout", type=positive_seconds, default=300.0,
                        help="seconds to wait for the results (default 300)")
    parser.add_argument("--no-wait", action="store_true", help="print job ids and return")
    parser.set_defaults(func=run_command)


JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number",
              bool: "a boolean", type(None): "null"}


def _checked(body: Any, where: str) -> dict[str, Any]:
    """A request body the broker can carry: a JSON object that encodes back to UTF-8."""
    if not isinstance(body, dict):
        kind = JSON_TYPES.get(type(body), type(body).__name__)
        raise ValidationError(f"{where}: a job is a JSON object (a request body), not {kind}")
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{where}: holds a lone surrogate (an unpaired \\ud800-\\udfff "
                              "escape), which UTF-8 cannot carry") from None
    except RecursionError:
        raise ValidationError(f"{where}: nested too deeply") from None
    return body


def _parsed(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{where}: not UTF-8 text (byte {exc.start + 1})") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{where}: not JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise ValidationError(f"{where}: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (4,300 digits)
        raise ValidationError(f"{where}: not usable JSON: {exc}") from None


def read_bodies(path: str) -> list[dict[str, Any]]:
    """The request bodies of a JSONL file, one per non-blank line, each checked."""
    bodies = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                where = f"{path}:{number}"
                bodies.append(_checked(_parsed(raw, where), where))
    return bodies


def _bodies(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.file:
        return read_bodies(args.file)
    if not (args.model and args.prompt):
        raise ValidationError("give --model and --prompt, or --file")
    body = {"model": args.model, "messages": [{"role": "user", "content": args.prompt}]}
    return [_checked(body, "--prompt")]


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
