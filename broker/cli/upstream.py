"""`aibroker upstream`: run the simulated OpenAI-compatible provider."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pydantic

from broker.errors import ConfigError
from broker.simulator import server
from broker.simulator.settings import SimSettings, describe_errors

# Field annotation -> argparse converter; bool fields get --x/--no-x instead.
_CONVERTERS: dict[object, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: float,
    int | None: int,
}


def _flag_kwargs(name: str, info: pydantic.fields.FieldInfo) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "dest": name,
        "default": argparse.SUPPRESS,  # unset flags fall back to SimSettings' own defaults
        "help": f"{info.description} (default: {info.default})",
    }
    if info.annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
        return kwargs
    converter = _CONVERTERS.get(info.annotation)
    if converter is None:
        raise TypeError(f"no command-line converter for SimSettings.{name}: {info.annotation}")
    kwargs["type"] = converter
    kwargs["metavar"] = name.upper()
    return kwargs


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `upstream` sub-command: one flag per SimSettings field."""
    parser = subparsers.add_parser(
        "upstream",
        help="run the simulated OpenAI-compatible provider",
        description=(
            "Serve /v1/chat/completions, /v1/embeddings and /v1/models like the OpenAI API, "
            "with configurable latency and faults, plus /_sim/* control routes. Prints "
            "'aibroker upstream listening on http://HOST:PORT' once it accepts connections."
        ),
    )
    for name, info in SimSettings.model_fields.items():
        parser.add_argument(f"--{name.replace('_', '-')}", **_flag_kwargs(name, info))
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Build SimSettings from the flags and serve until interrupted."""
    given = {name: getattr(args, name) for name in SimSettings.model_fields if hasattr(args, name)}
    try:
        settings = SimSettings.model_validate(given)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"invalid upstream settings: {describe_errors(exc)}") from None
    try:
        server.run(settings)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
    return 0
