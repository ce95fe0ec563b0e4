"""A tenant may call only the models its allow-list names."""

from __future__ import annotations

from broker.errors import ModelNotAllowed
from policies.guards.base import PolicyContext, Verdict, register_guard


@register_guard("model_allowlist")
class ModelAllowlist:
    """Checks the model against the tenant's allowed patterns."""

    name = "model_allowlist"

    def check(self, ctx: PolicyContext) -> Verdict:
        """Refuse a model outside the tenant's allow-list."""
        if ctx.tenant is None or not ctx.tenant.allows(ctx.body.model):
            return Verdict.refuse(ModelNotAllowed(
                f"tenant {ctx.tenant_name!r} may not use model {ctx.body.model!r}"))
        return Verdict.allow()
