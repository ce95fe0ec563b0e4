"""The requested model must exist in the catalog."""

from __future__ import annotations

from broker.errors import UnknownModel
from policies.guards.base import PolicyContext, Verdict, register_guard


@register_guard("known_model")
class KnownModel:
    """Resolves the logical model a job asks for."""

    name = "known_model"

    def check(self, ctx: PolicyContext) -> Verdict:
        """Refuse a model the catalog does not declare."""
        spec = ctx.catalog.models.get(ctx.body.model)
        if spec is None:
            return Verdict.refuse(UnknownModel(f"model {ctx.body.model!r} is not in the catalog"))
        ctx.model = spec
        return Verdict.allow()
