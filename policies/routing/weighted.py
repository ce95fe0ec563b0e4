"""Weighted random choice: traffic splits in proportion to each deployment's weight."""

from __future__ import annotations

import random
from collections.abc import Sequence

from broker.catalog import Deployment
from policies.routing.base import States, register_strategy


@register_strategy("weighted")
class Weighted:
    """Picks a deployment with probability weight / sum of weights."""

    name = "weighted"

    def choose(self, candidates: Sequence[Deployment], input_tokens: int,
               rng: random.Random, states: States) -> Deployment:
        """One deployment, drawn by weight."""
        if len(candidates) == 1:
            return candidates[0]
        return rng.choices(candidates, weights=[d.weight for d in candidates])[0]
