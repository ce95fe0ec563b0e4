"""Lowest latency: the deployment with the smallest moving average of observed latency."""

from __future__ import annotations

import random
from collections.abc import Sequence

from broker.catalog import Deployment
from policies.routing.base import States, pick_best, register_strategy, state_of

EXPLORE_SHARE = 0.05  # a little traffic keeps every deployment's average current


@register_strategy("lowest-latency")
class LowestLatency:
    """Smallest latency EWMA; unmeasured deployments are tried first."""

    name = "lowest-latency"

    def choose(self, candidates: Sequence[Deployment], input_tokens: int,
               rng: random.Random, states: States) -> Deployment:
        """The fastest candidate, with a small share of exploration."""
        if len(candidates) > 1 and rng.random() < EXPLORE_SHARE:
            return rng.choice(list(candidates))
        return pick_best(candidates, lambda d: state_of(states, d).ewma_ms or 0.0, rng)
