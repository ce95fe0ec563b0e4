"""Most headroom: the deployment with the largest share of its RPM/TPM/concurrency left."""

from __future__ import annotations

import random
from collections.abc import Sequence

from broker.catalog import Deployment
from policies.routing.base import DeploymentState, States, pick_best, register_strategy, state_of


def headroom(deployment: Deployment, state: DeploymentState) -> float:
    """The smallest remaining share over the deployment's limits (1 = idle)."""
    capacity = deployment.capacity
    shares = [1.0 - state.in_flight / capacity.concurrency]
    if capacity.rpm:
        shares.append(1.0 - state.requests_in_window / (capacity.rpm * state.factor))
    if capacity.tpm:
        shares.append(1.0 - state.tokens_in_window / (capacity.tpm * state.factor))
    return min(shares)


@register_strategy("most-headroom")
class MostHeadroom:
    """Largest remaining share of the tightest limit."""

    name = "most-headroom"

    def choose(self, candidates: Sequence[Deployment], input_tokens: int,
               rng: random.Random, states: States) -> Deployment:
        """The candidate furthest from its limits."""
        return pick_best(candidates, lambda d: -headroom(d, state_of(states, d)), rng)
