"""Routing strategies: pick a deployment of a model for each job."""

from policies.routing.base import RoutingStrategy, get_strategy, register_strategy

__all__ = ["RoutingStrategy", "get_strategy", "register_strategy"]
