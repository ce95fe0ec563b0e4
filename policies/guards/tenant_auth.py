"""Who is asking: the key hash must belong to a tenant of the catalog."""

from __future__ import annotations

from broker.errors import AuthenticationFailed
from policies.guards.base import PolicyContext, Verdict, register_guard


@register_guard("tenant_auth")
class TenantAuth:
    """Resolves the tenant from the key hash, in constant time per tenant."""

    name = "tenant_auth"

    def check(self, ctx: PolicyContext) -> Verdict:
        """Refuse a key that matches no tenant."""
        found = ctx.catalog.find_tenant(ctx.key_sha256)
        if found is None:
            return Verdict.refuse(AuthenticationFailed("the API key matches no tenant"))
        ctx.tenant_name, ctx.tenant = found
        return Verdict.allow()
