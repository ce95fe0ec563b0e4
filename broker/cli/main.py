"""Entry point of the `aibroker` command: one module per sub-command, registered here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from broker.errors import BrokerError

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


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="aibroker", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `aibroker` sub-command and return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except BrokerError as exc:
        print(f"aibroker: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
