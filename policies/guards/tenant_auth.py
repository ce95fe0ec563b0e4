"""Who is asking: the key hash must belong to a tenant (static in the catalog, or issued)."""

from __future__ import annotations

from broker.errors import AuthenticationFailed
from policies.guards.base import PolicyContext, Verdict, register_guard


@register_guard("tenant_auth")
class TenantAuth:
    """Resolves the tenant from the key hash, comparing in constant time per tenant."""

    name = "tenant_auth"

    def check(self, ctx: PolicyContext) -> Verdict:
        """Refuse a key that matches no tenant."""
        found = ctx.catalog.find_tenant(ctx.key_sha256)
        if found is None:
            # Issued keys were looked up by their hash, so timing reveals nothing of the key.
            issued_to = ctx.key_grants.get(ctx.key_sha256)
            tenant = ctx.catalog.tenants.get(issued_to) if issued_to else None
            if issued_to is None or tenant is None:
                return Verdict.refuse(AuthenticationFailed("the API key matches no tenant"))
            found = (issued_to, tenant)
        ctx.tenant_name, ctx.tenant = found
        return Verdict.allow()
