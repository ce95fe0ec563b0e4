"""Policy stage: admit or reject a batch of jobs, then route the admitted ones."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from broker import jobstore as js
from broker.errors import JobCancelled, JobExpired
from broker.jobstore import JobRecord, RouteState
from broker.schemas import JobResult, JobStatus, PolicyInfo
from workers.outcomes import ended_early, missing_payload
from workers.routing_stage import choose_deployment
from workers.runtime import Runtime
from workers.store import load_records

DispatchKey = tuple[str, str]  # (deployment, lane)


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


async def admit_batch(rt: Runtime, job_ids: list[str]) -> DispatchPlan:
    """Run the guards over every job of a batch, record the outcome, plan the dispatch."""
    plan = DispatchPlan()
    records = await load_records(rt.redis, job_ids)
    states = await rt.deployment_states() if rt.settings.inline_routing else {}
    finished: list[tuple[JobResult, int]] = []
    async with rt.redis.pipeline(transaction=False) as pipe:
        for job_id, record in zip(job_ids, records, strict=True):
            if record is None:
                finished.append((missing_payload(job_id), 0))
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
                finished.append((early, 0))
                continue
            started = time.perf_counter()
            verdict, ctx = rt.policy.evaluate(job_id, record.body, record.key_sha256)
            policy_ms = (time.perf_counter() - started) * 1000
            record.tenant = ctx.tenant_name
            info = PolicyInfo(findings=ctx.findings, warnings=ctx.warnings,
                              redacted=ctx.body_changed)
            record.policy_json = info.model_dump_json()
            if not verdict.allowed:
                assert verdict.rejection is not None
                finished.append((ended_early(record, JobStatus.REJECTED, verdict.rejection,
                                             policy_ms), 0))
                plan.rejected += 1
                continue
            record.input_tokens = ctx.input_tokens
            fields: dict[str, str | int] = {
                js.F_TENANT: ctx.tenant_name or "", js.F_INPUT_TOKENS: ctx.input_tokens,
                js.F_ADMITTED: repr(time.time()), js.F_POLICY_MS: f"{policy_ms:.3f}",
                js.F_STATE: JobStatus.ADMITTED.value, js.F_POLICY: record.policy_json}
            if ctx.body_changed:
                # The redacted body replaces the original: only it may leave the broker.
                fields[js.F_BODY] = ctx.body.model_dump_json(exclude_none=True)
            if rt.settings.inline_routing:
                model, deployment = choose_deployment(rt, record, states)
                fields[js.F_DEPLOYMENT] = deployment
                fields[js.F_ROUTE] = RouteState(model=model).model_dump_json()
                plan.to_model[(deployment, record.lane)].append(job_id)
            else:
                plan.to_route.append(job_id)
            pipe.hset(js.job_key(job_id), mapping=fields)  # type: ignore[arg-type]
        await pipe.execute()
    if finished:
        await rt.backend.finish_many(rt.redis, finished)
        plan.ended = len(finished) - plan.rejected
    return plan
