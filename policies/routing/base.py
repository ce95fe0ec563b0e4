"""The routing-strategy Protocol and its registry."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from broker.catalog import Deployment
from broker.plugins import load_plugins


@dataclass(slots=True)
class DeploymentState:
    """What is known of a deployment right now (shared state, read in one round trip)."""

    name: str
    factor: float = 1.0
    ewma_ms: float | None = None
    state: str = "closed"
    opened_at_ms: float = 0.0
    in_flight: int = 0
    requests_in_window: int = 0
    tokens_in_window: int = 0


States = Mapping[str, DeploymentState]


class RoutingStrategy(Protocol):
    """Chooses one deployment among the healthy candidates of a model."""

    name: str

    def choose(self, candidates: Sequence[Deployment], input_tokens: int,
               rng: random.Random, states: States) -> Deployment:
        """The deployment that should serve one job."""
        ...


def state_of(states: States, deployment: Deployment) -> DeploymentState:
    """A deployment's state, or a fresh one when nothing is known yet."""
    return states.get(deployment.name) or DeploymentState(deployment.name)


def pick_best(candidates: Sequence[Deployment], score: Callable[[Deployment], float],
              rng: random.Random) -> Deployment:
    """The lowest-scoring candidate; ties broken at random so load spreads."""
    scored = [(score(d), d) for d in candidates]
    best = min(value for value, _ in scored)
    tied = [d for value, d in scored if value <= best + 1e-9]
    return tied[0] if len(tied) == 1 else rng.choice(tied)


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
    load_plugins("policies.routing")
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown routing strategy {name!r}; known: {sorted(_REGISTRY)}") from None
