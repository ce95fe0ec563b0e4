"""Least busy: the deployment with the smallest share of its concurrency in use."""

from __future__ import annotations

import random
from collections.abc import Sequence

from broker.catalog import Deployment
from policies.routing.base import States, pick_best, register_strategy, state_of


@register_strategy("least-busy")
class LeastBusy:
    """Fewest calls in flight relative to capacity."""

    name = "least-busy"

    def choose(self, candidates: Sequence[Deployment], input_tokens: int,
               rng: random.Random, states: States) -> Deployment:
        """The candidate with the lowest in-flight / concurrency."""
        return pick_best(candidates, lambda d: state_of(states, d).in_flight
                         / d.capacity.concurrency, rng)
