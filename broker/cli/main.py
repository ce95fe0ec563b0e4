"""Entry point of the `aibroker` command: one module per sub-command, registered here.

The one error boundary of the command line is here too: every error a user can cause (a bad
argument, a file that is not there, Redis not answering, a catalog that does not validate)
ends as one line `aibroker: error[<code>]: <message>` on stderr and exit status 2. Only a
defect of the broker itself shows a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import pydantic
import pydantic_core
import redis

from broker.errors import (
    BrokerError,
    InvalidArgument,
    RedisUnreachable,
    ValidationError,
    WaitTimeout,
)

DESCRIPTION = """\
ai-broker: an asynchronous gateway in front of LLM providers. Jobs go through Redis to
policy workers (tenant keys, allowed models, limits, budgets, content guards) and model
workers that call each deployment within its global capacity, retry, fall back and bill
every call to a usage ledger. The catalog (AIBROKER_CONFIG, default aibroker.yaml; see
examples/aibroker.yaml) describes models, deployments, capacity, prices and tenants.
Start with `aibroker demo`."""

EPILOG = "Run `aibroker COMMAND --help` for a command's options."

# Each module exposes `register(subparsers)`, which adds its parser and sets `func`.
COMMAND_MODULES = (
    "broker.cli.batch",
    "broker.cli.audit",
    "broker.cli.demo",
    "broker.cli.status",
    "broker.cli.submit",
    "broker.cli.tenants",
    "broker.cli.upstream",
    "broker.cli.usage",
    "broker.cli.workers",
)

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell shows for a process ended by SIGPIPE


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors join the CLI's one-line error format."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage, so the boundary reports it as one line."""
        command = self.prog.removeprefix("aibroker").strip() or "aibroker"
        raise InvalidArgument(f"{command}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command."""
    parser = Parser(prog="aibroker", description=DESCRIPTION, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def as_broker_error(exc: BaseException) -> BrokerError | None:
    """The project's error for an exception a user can cause; None for a defect."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return RedisUnreachable(f"Redis did not answer ({exc}); check broker.redis_url in "
                                "the catalog or AIBROKER_REDIS_URL, and that Redis runs")
    if isinstance(exc, TimeoutError) and not exc.strerror:
        return WaitTimeout(f"{exc} (the jobs go on running)")
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return InvalidArgument(f"{where}{exc.strerror}")
    if isinstance(exc, json.JSONDecodeError | UnicodeError | RecursionError):
        return ValidationError(f"unreadable input: {exc}")
    if isinstance(exc, pydantic.ValidationError | pydantic_core.PydanticSerializationError):
        return ValidationError(f"invalid input: {exc}")
    return None


def one_line(text: str) -> str:
    """A possibly multi-line message (catalog validation, YAML) on one line."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join([*lines[:1], "; ".join(lines[1:])]).strip() if lines else "(no detail)"


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    sys.stdout.flush()  # a closed pipe shows here, inside the boundary, not at exit
    return status


def _stdout_gone() -> int:
    # Later writes (and the interpreter's final flush) go nowhere instead of failing again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `aibroker` sub-command and return its exit status."""
    try:
        return _run(argv)
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        error = as_broker_error(exc)
        if error is None:
            raise
        print(f"aibroker: error[{error.code}]: {one_line(error.message)}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
