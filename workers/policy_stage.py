"""Policy stage: admit or reject a batch of jobs, then route the admitted ones.

Per job: the guards (pure), then the budgets (reserved in Redis), then one audit entry;
for the batch: one read of the job hashes and issued keys, one pipelined write.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from broker import jobstore as js
from broker import keys
from broker.errors import InvalidJob, JobCancelled, JobExpired, PolicyRejection
from broker.jobstore import JobRecord, RouteState
from broker.schemas import JobResult, JobStatus, PolicyInfo
from broker.tenant_keys import decode_grant
from broker.tokens import text_bytes
from policies.guards import PolicyContext
from workers.audit import AuditEntry, append_audit, trim_by_age
from workers.budgets import Reservation, applicable, estimate
from workers.finishing import finish_many
from workers.outcomes import ended_early, missing_payload
from workers.routing_stage import choose_deployment
from workers.runtime import Runtime
from workers.store import load_records

DispatchKey = tuple[str, str]  # (deployment, lane)
AUDIT_TRIM_EVERY_S = 60.0
_last_trim = [0.0]
# Above this much text, the guards (token counting above all) run in a thread.
THREAD_COUNT_BYTES = 64 * 1024


@dataclass(slots=True)
class DispatchPlan:
    """Where the admitted jobs of a batch go next."""

    to_model: dict[DispatchKey, list[str]] = field(default_factory=lambda: defaultdict(list))
    to_route: list[str] = field(default_factory=list)
    rejected: int = 0
    ended: int = 0

    def summary(self) -> dict[str, int]:
        """Counts for the task result shown in Flower."""
        routed = sum(len(ids) for ids in self.to_model.values()) + len(self.to_route)
        return {"admitted": routed, "rejected": self.rejected, "ended": self.ended}


def _early_end(record: JobRecord) -> JobResult | None:
    if record.cancel_requested:
        return ended_early(record, JobStatus.CANCELLED, JobCancelled("cancelled by the caller"))
    if record.expired():
        return ended_early(record, JobStatus.EXPIRED,
                           JobExpired("the deadline passed before the job could start"))
    return None


async def _key_grants(rt: Runtime, records: list[JobRecord | None]) -> dict[str, str]:
    """Tenants of the issued keys this batch presents (valid grants only)."""
    hashes = sorted({r.key_sha256 for r in records if r is not None and r.key_sha256})
    if not hashes:
        return {}
    raw = await rt.redis.hmget(keys.tenant_keys(), hashes)
    now = time.time()
    grants = {}
    for digest, value in zip(hashes, raw, strict=True):
        grant = decode_grant(value)
        if grant is not None and grant.valid(now):
            grants[digest] = grant.tenant
    return grants


async def _reserve_budget(rt: Runtime,
                          ctx: PolicyContext) -> Reservation | PolicyRejection | None:
    """Hold the job's estimated tokens and cost against its tenant's budgets."""
    assert ctx.tenant is not None
    assert ctx.tenant_name is not None
    caps = applicable(ctx.tenant_name, ctx.tenant, ctx.body.model, time.time())
    if not caps:
        return None
    tokens, nanousd = estimate(rt.catalog, ctx.body, ctx.input_tokens,
                               rt.settings.capacity.default_max_tokens)
    reservation, warned = await rt.budgets.reserve(ctx.job_id, caps, tokens, nanousd)
    for key in warned:
        ctx.warnings.append(f"budget {key.split(':', 2)[-1]} passed its soft threshold")
    return reservation


def _text_size(record: JobRecord) -> int:
    body = record.body
    messages = ([m.model_dump(include={"content", "name"}) for m in body.messages]
                if body.messages is not None else None)
    return text_bytes(messages, body.input)


def _admitted_fields(record: JobRecord, ctx: PolicyContext,
                     policy_ms: float) -> dict[str, str | int]:
    fields: dict[str, str | int] = {
        js.F_TENANT: ctx.tenant_name or "", js.F_INPUT_TOKENS: ctx.input_tokens,
        js.F_ADMITTED: repr(time.time()), js.F_POLICY_MS: f"{policy_ms:.3f}",
        js.F_STATE: JobStatus.ADMITTED.value, js.F_POLICY: record.policy_json or ""}
    if record.budget_json:
        fields[js.F_BUDGET] = record.budget_json
    if ctx.body_changed:
        # The redacted body replaces the original: only it may leave the broker.
        fields[js.F_BODY] = ctx.body.model_dump_json(exclude_none=True)
    return fields


async def _admit_one(rt: Runtime, record: JobRecord, grants: dict[str, str]
                     ) -> tuple[PolicyContext, PolicyRejection | None, float]:
    started = time.perf_counter()
    args = (record.id, record.body, record.key_sha256, record.lane, grants)
    if _text_size(record) > THREAD_COUNT_BYTES:
        # Counting a large prompt holds the worker loop for a while: off it, so the other
        # jobs of this worker go on meanwhile (tiktoken releases the GIL while it encodes).
        verdict, ctx = await asyncio.to_thread(rt.policy.evaluate, *args)
    else:
        verdict, ctx = rt.policy.evaluate(*args)
    rejection = verdict.rejection
    if verdict.allowed:
        held = await _reserve_budget(rt, ctx)
        if isinstance(held, PolicyRejection):
            rejection = held
        elif held is not None:
            record.budget_json = held.to_json()
    record.tenant = ctx.tenant_name
    record.policy_json = PolicyInfo(findings=ctx.findings, warnings=ctx.warnings,
                                    redacted=ctx.body_changed,
                                    version=rt.catalog_version).model_dump_json()
    return ctx, rejection, (time.perf_counter() - started) * 1000


async def _admit_alone(rt: Runtime, record: JobRecord, grants: dict[str, str]
                       ) -> tuple[PolicyContext, PolicyRejection | None, float] | JobResult:
    """_admit_one, or the job failed alone when it makes the guards raise."""
    try:
        return await _admit_one(rt, record, grants)
    except RedisError:
        raise  # an outage: the whole step runs again (tasks.through_outages)
    except Exception as exc:
        # One job the stage cannot process must not strand the rest of its message.
        error = InvalidJob(f"the policy stage could not process the job: "
                           f"{type(exc).__name__}: {exc}"[:300])
        return ended_early(record, JobStatus.FAILED, error)


async def admit_batch(rt: Runtime, job_ids: list[str]) -> DispatchPlan:
    """Run the guards over every job of a batch, record the outcome, plan the dispatch."""
    await rt.maybe_reload()
    plan = DispatchPlan()
    records = await load_records(rt.redis, job_ids)
    grants = await _key_grants(rt, records)
    states = await rt.deployment_states() if rt.settings.inline_routing else {}
    finished: list[tuple[JobResult, int, JobRecord | None]] = []
    audit: list[AuditEntry] = []
    async with rt.redis.pipeline(transaction=False) as pipe:
        for job_id, record in zip(job_ids, records, strict=True):
            if record is None:
                finished.append((missing_payload(job_id), 0, None))
                continue
            if record.state.terminal:
                continue
            if record.state is not JobStatus.QUEUED:
                # A redelivered message: this job was admitted before; send it on again.
                if record.deployment:
                    plan.to_model[(record.deployment, record.lane)].append(job_id)
                else:
                    plan.to_route.append(job_id)
                continue
            early = _early_end(record)
            if early is not None:
                finished.append((early, 0, record))
                continue
            admitted = await _admit_alone(rt, record, grants)
            if isinstance(admitted, JobResult):
                finished.append((admitted, 0, record))
                continue
            ctx, rejection, policy_ms = admitted
            audit.append(AuditEntry.of(record, ctx, rejection, rt.catalog_version))
            if rejection is not None:
                finished.append((ended_early(record, JobStatus.REJECTED, rejection, policy_ms),
                                 0, record))
                plan.rejected += 1
                continue
            record.input_tokens = ctx.input_tokens
            fields = _admitted_fields(record, ctx, policy_ms)
            if rt.settings.inline_routing:
                model, deployment = choose_deployment(rt, record, states)
                fields[js.F_DEPLOYMENT] = deployment
                fields[js.F_ROUTE] = RouteState(model=model).model_dump_json()
                plan.to_model[(deployment, record.lane)].append(job_id)
            else:
                plan.to_route.append(job_id)
            pipe.hset(js.job_key(job_id), mapping=fields)  # type: ignore[arg-type]
        append_audit(pipe, audit, rt.settings.audit_max_entries)
        await pipe.execute()
    if finished:
        await finish_many(rt, finished)
        plan.ended = len(finished) - plan.rejected
    if time.monotonic() - _last_trim[0] > AUDIT_TRIM_EVERY_S:
        _last_trim[0] = time.monotonic()
        await trim_by_age(rt.redis, rt.settings.audit_retention_days)
    return plan
