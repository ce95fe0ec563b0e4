"""Routing strategies: pick a deployment of a model for each job."""

from policies.routing.base import (
    DeploymentState,
    RoutingStrategy,
    States,
    get_strategy,
    register_strategy,
)

__all__ = ["DeploymentState", "RoutingStrategy", "States", "get_strategy", "register_strategy"]
