"""The scenarios of issue 7, run in this order; each returns a JSON-ready dict."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.config import Sizes
from bench.harness import Infra

SCENARIOS = ("throughput", "baselines", "transport", "latency", "scaling", "capacity",
             "memory", "tokenizer")


@dataclass
class Context:
    """What a scenario gets: the shared infrastructure, the sizes, and earlier results."""

    infra: Infra
    sizes: Sizes
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: bool = False


Scenario = Callable[[Context], dict[str, Any]]


def get(name: str) -> Scenario:
    """The `run` function of a scenario module."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    module = importlib.import_module(f"bench.scenarios.{name}")
    runner: Scenario = module.run
    return runner
