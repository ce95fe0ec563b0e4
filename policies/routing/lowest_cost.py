"""Lowest cost: the deployment whose prices make this job cheapest."""

from __future__ import annotations

import random
from collections.abc import Sequence

from broker.catalog import Deployment
from policies.routing.base import States, pick_best, register_strategy

ASSUMED_OUTPUT_SHARE = 0.25  # output tokens are unknown at routing time


@register_strategy("lowest-cost")
class LowestCost:
    """Cheapest for the job's input tokens plus an assumed share of output."""

    name = "lowest-cost"

    def choose(self, candidates: Sequence[Deployment], input_tokens: int,
               rng: random.Random, states: States) -> Deployment:
        """The cheapest candidate for this job."""
        output = max(1, int(input_tokens * ASSUMED_OUTPUT_SHARE))
        return pick_best(candidates, lambda d: d.price.cost_nanousd(input_tokens, output), rng)
