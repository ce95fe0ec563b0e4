"""What a tenant may ask for: job kinds, the interactive lane, and how long a reply."""

from __future__ import annotations

from broker.errors import KindNotAllowed, LaneNotAllowed, OutputTooLarge
from policies.guards.base import PolicyContext, Verdict, register_guard


@register_guard("authorization")
class Authorization:
    """Checks kind, lane and output cap against the tenant's settings."""

    name = "authorization"

    def check(self, ctx: PolicyContext) -> Verdict:
        """Refuse a kind, lane or output size the tenant may not use."""
        tenant = ctx.tenant
        if tenant is None:
            return Verdict.allow()
        kind = ctx.body.kind
        if kind not in tenant.allowed_kinds:
            return Verdict.refuse(KindNotAllowed(
                f"tenant {ctx.tenant_name!r} may not submit {kind} jobs"))
        if ctx.lane == "interactive" and tenant.max_lane == "batch":
            return Verdict.refuse(LaneNotAllowed(
                f"tenant {ctx.tenant_name!r} may use the batch lane only"))
        cap = ctx.body.output_cap
        if tenant.max_output_tokens is not None and cap is not None and (
                cap > tenant.max_output_tokens):
            return Verdict.refuse(OutputTooLarge(
                f"max_tokens {cap} is over the tenant's limit of {tenant.max_output_tokens}"))
        return Verdict.allow()
