"""Runs the guards in order over a job; the first refusal ends the job."""

from __future__ import annotations

from collections.abc import Mapping

from broker.catalog import Catalog, GuardMode
from broker.schemas import JobBody
from policies.guards import Guard, PolicyContext, Verdict, build_guards
from policies.guards.base import ContentGuard, build_content_guard


class PolicyPipeline:
    """The admission guards, then each tenant's content guards; built once per process."""

    def __init__(self, catalog: Catalog, guards: list[Guard] | None = None) -> None:
        self.catalog = catalog
        self.guards = guards if guards is not None else build_guards()
        self.content: dict[str, list[tuple[ContentGuard, GuardMode]]] = {
            tenant_name: [(build_content_guard(name, settings.options), settings.mode)
                          for name, settings in tenant.guards.items() if settings.mode != "off"]
            for tenant_name, tenant in catalog.tenants.items()
        }

    def evaluate(self, job_id: str, body: JobBody, key_sha256: str, lane: str = "interactive",
                 key_grants: Mapping[str, str] | None = None) -> tuple[Verdict, PolicyContext]:
        """The verdict for one job, with the context the guards filled in."""
        ctx = PolicyContext(job_id=job_id, body=body, key_sha256=key_sha256,
                            catalog=self.catalog, lane=lane, key_grants=key_grants or {})
        for guard in self.guards:
            verdict = guard.check(ctx)
            if not verdict.allowed:
                return verdict, ctx
        for content_guard, mode in self.content.get(ctx.tenant_name or "", ()):
            verdict = content_guard.inspect(ctx, mode)
            if not verdict.allowed:
                return verdict, ctx
        return Verdict.allow(), ctx
