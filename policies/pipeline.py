"""Runs the guards in order over a job; the first refusal ends the job."""

from __future__ import annotations

from broker.catalog import Catalog
from broker.schemas import JobBody
from policies.guards import Guard, PolicyContext, Verdict, build_guards


class PolicyPipeline:
    """An ordered list of guards, built once per worker process."""

    def __init__(self, catalog: Catalog, guards: list[Guard] | None = None) -> None:
        self.catalog = catalog
        self.guards = guards if guards is not None else build_guards()

    def evaluate(self, job_id: str, body: JobBody, key_sha256: str) -> tuple[Verdict,
                                                                             PolicyContext]:
        """The verdict for one job, with the context the guards filled in."""
        ctx = PolicyContext(job_id=job_id, body=body, key_sha256=key_sha256, catalog=self.catalog)
        for guard in self.guards:
            verdict = guard.check(ctx)
            if not verdict.allowed:
                return verdict, ctx
        return Verdict.allow(), ctx
