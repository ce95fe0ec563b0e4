"""The audit stream: one entry per policy decision, never any prompt text."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from broker import keys
from broker.errors import PolicyRejection
from broker.jobstore import JobRecord
from policies.guards import PolicyContext


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who asked for what, what was decided, by which rule and policy version."""

    job: str
    tenant: str
    model: str
    decision: str
    rule: str
    version: str
    input_tokens: int
    lane: str
    findings: str

    @classmethod
    def of(cls, record: JobRecord, ctx: PolicyContext, rejection: PolicyRejection | None,
           version: str) -> AuditEntry:
        """The entry for one decision."""
        findings = ",".join(f"{kind}={n}" for kind, n in sorted(ctx.findings.items()))
        return cls(job=record.id, tenant=ctx.tenant_name or "-", model=record.body.model,
                   decision="rejected" if rejection else "admitted",
                   rule=rejection.code if rejection else "-", version=version,
                   input_tokens=ctx.counted_tokens, lane=record.lane, findings=findings)

    def fields(self) -> dict[str, Any]:
        """Stream entry fields."""
        return {"job": self.job, "tenant": self.tenant, "model": self.model,
                "decision": self.decision, "rule": self.rule, "version": self.version,
                "input_tokens": self.input_tokens, "lane": self.lane,
                "findings": self.findings}


def append_audit(pipe: Any, entries: list[AuditEntry], max_entries: int) -> None:
    """Queue one stream entry holding a batch's decisions (one command, not one per job)."""
    if entries:
        payload = json.dumps([entry.fields() for entry in entries], separators=(",", ":"))
        pipe.xadd(keys.audit_stream(), {"decisions": payload}, maxlen=max_entries,
                  approximate=True)


async def trim_by_age(client: Any, retention_days: int) -> None:
    """Drop entries older than the retention (stream ids start with milliseconds)."""
    oldest_ms = int((time.time() - retention_days * 86_400) * 1000)
    await client.xtrim(keys.audit_stream(), minid=oldest_ms, approximate=True)
