"""The routing-strategy Protocol and its registry."""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from broker.catalog import Deployment

_BUILTIN_MODULES = ("policies.routing.weighted",)


class RoutingStrategy(Protocol):
    """Chooses one deployment among the healthy candidates of a model."""

    name: str

    def choose(self, candidates: Sequence[Deployment], input_tokens: int,
               rng: random.Random) -> Deployment:
        """The deployment that should serve one job."""
        ...


_REGISTRY: dict[str, Callable[[], RoutingStrategy]] = {}


def register_strategy(name: str) -> Callable[[Callable[[], RoutingStrategy]],
                                             Callable[[], RoutingStrategy]]:
    """Class decorator adding a strategy to the registry."""

    def decorate(factory: Callable[[], RoutingStrategy]) -> Callable[[], RoutingStrategy]:
        _REGISTRY[name] = factory
        return factory

    return decorate


def get_strategy(name: str) -> RoutingStrategy:
    """A new instance of the named strategy."""
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown routing strategy {name!r}; known: {sorted(_REGISTRY)}") from None
