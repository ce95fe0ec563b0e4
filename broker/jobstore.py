"""Job payloads in Redis: messages carry only ids, the prompt lives here under a TTL."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from broker import keys
from broker.schemas import Attempt, ErrorInfo, JobBody, JobRequest, JobStatus, Lane, PolicyInfo

# Fields of the job hash; short names keep the hash small (one per queued job).
F_BODY = "body"
F_KEY = "key"
F_SUBMITTED = "sub"
F_STATE = "state"
F_LANE = "lane"
F_DEADLINE = "dl"
F_META = "meta"
F_TENANT = "tenant"
F_INPUT_TOKENS = "itok"
F_ADMITTED = "adm"
F_POLICY_MS = "polms"
F_DEPLOYMENT = "dep"
F_RUNS = "runs"
F_CANCEL = "cancel"
F_POLICY = "policy"
F_ROUTE = "route"  # JSON: serving model, deployments tried, attempts so far, last error
F_BUDGET = "budget"  # JSON: the budget reservation to settle when the job ends
F_OPEN_ATTEMPT = "att"  # the upstream call in progress (workers/attempts.py), until it settles


BATCH_ID_PREFIX = "batch_"
_MS_DIGITS = 12  # hex digits of the millisecond timestamp that starts every id


def new_job_id() -> str:
    """A fresh job id: 12 hex digits of milliseconds, then 80 random bits (32 hex in all).

    The time prefix lets a reader tell an id whose records aged out (`expired`) from one
    that never existed, without keeping anything per job.
    """
    return f"{time.time_ns() // 1_000_000:0{_MS_DIGITS}x}{secrets.token_hex(10)}"


def new_batch_id() -> str:
    """A fresh batch id (`batch_` and a time-ordered id, like OpenAI's `batch_...`)."""
    return BATCH_ID_PREFIX + new_job_id()


def batch_job_id(batch_id: str, index: int) -> str:
    """The id of a batch's job number `index` (0-based over its accepted lines)."""
    return f"{batch_id}-{index}"


def batch_of(job_id: str) -> tuple[str, int] | None:
    """(batch id, index) of a batch job's id; None for a job submitted on its own."""
    if not job_id.startswith(BATCH_ID_PREFIX):
        return None
    head, sep, tail = job_id.rpartition("-")
    return (head, int(tail)) if sep and tail.isdigit() else None


def id_time(job_or_batch_id: str) -> float | None:
    """When an id was made (epoch seconds), or None if it carries no usable time."""
    bare = job_or_batch_id.removeprefix(BATCH_ID_PREFIX)[:_MS_DIGITS]
    try:
        made = int(bare, 16) / 1000
    except ValueError:
        return None
    return made if len(bare) == _MS_DIGITS and made <= time.time() + 86400 else None


def encode_new(request: JobRequest, key_sha256: str, now: float) -> dict[str, str]:
    """Hash fields of a newly submitted job; the raw API key is never stored."""
    fields = {
        F_BODY: request.body().model_dump_json(exclude_none=True),
        F_KEY: key_sha256,
        F_SUBMITTED: repr(now),
        F_STATE: JobStatus.QUEUED.value,
        F_LANE: request.priority,
    }
    if request.deadline is not None:
        fields[F_DEADLINE] = repr(request.deadline.timestamp())
    if request.metadata:
        fields[F_META] = json.dumps(request.metadata, separators=(",", ":"))
    return fields


def encode_batch_job(body_json: str, key_sha256: str, now: float,
                     deadline: float) -> dict[str, str]:
    """Hash fields of a batch job: batch lane, deadline at the end of the completion window."""
    return {F_BODY: body_json, F_KEY: key_sha256, F_SUBMITTED: repr(now),
            F_STATE: JobStatus.QUEUED.value, F_LANE: "batch", F_DEADLINE: repr(deadline)}


class RouteState(BaseModel):
    """A job's journey across deployments, kept in its hash between stages."""

    model: str | None = None
    tried: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    last_error: ErrorInfo | None = None


@dataclass(slots=True)
class JobRecord:
    """A job as a stage reads it back from Redis."""

    id: str
    body_json: str
    key_sha256: str
    submitted_at: float
    state: JobStatus
    lane: Lane
    deadline: float | None
    metadata_json: str | None
    tenant: str | None
    input_tokens: int | None
    admitted_at: float | None
    policy_ms: float | None
    deployment: str | None
    cancel_requested: bool
    policy_json: str | None = None
    route_json: str | None = None
    budget_json: str | None = None
    _body: JobBody | None = None
    _route: RouteState | None = None

    @property
    def route(self) -> RouteState:
        """Where the job has been so far (fallbacks and retries on other deployments)."""
        if self._route is None:
            self._route = (RouteState.model_validate_json(self.route_json) if self.route_json
                           else RouteState())
        return self._route

    @property
    def policy(self) -> PolicyInfo:
        """The policy stage's findings for this job."""
        return PolicyInfo.model_validate_json(self.policy_json) if self.policy_json else (
            PolicyInfo())

    @property
    def body(self) -> JobBody:
        """The OpenAI body, parsed once on first use."""
        if self._body is None:
            self._body = JobBody.model_validate_json(self.body_json)
        return self._body

    @property
    def metadata(self) -> dict[str, str]:
        """Caller metadata (empty when none)."""
        if not self.metadata_json:
            return {}
        value: Any = json.loads(self.metadata_json)
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def expired(self, now: float | None = None) -> bool:
        """True when the job's deadline has passed."""
        return self.deadline is not None and (now or time.time()) >= self.deadline


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def decode_hash(job_id: str, fields: dict[str, str | None]) -> JobRecord | None:
    """A JobRecord from the job's whole hash (HGETALL); None if the payload is gone.

    Stages read whole hashes: packing a 16-field HMGET costs the client far more CPU than
    the few extra bytes of reply.
    """
    get = fields.get
    body = get(F_BODY)
    if body is None:
        return None
    itok = get(F_INPUT_TOKENS)
    lane = get(F_LANE) or "interactive"
    return JobRecord(
        id=job_id,
        body_json=body,
        key_sha256=get(F_KEY) or "",
        submitted_at=float(get(F_SUBMITTED) or 0.0),
        state=JobStatus(get(F_STATE) or JobStatus.QUEUED.value),
        lane="batch" if lane == "batch" else "interactive",
        deadline=_float(get(F_DEADLINE)),
        metadata_json=get(F_META),
        tenant=get(F_TENANT),
        input_tokens=int(itok) if itok else None,
        admitted_at=_float(get(F_ADMITTED)),
        policy_ms=_float(get(F_POLICY_MS)),
        deployment=get(F_DEPLOYMENT),
        cancel_requested=get(F_CANCEL) == "1",
        policy_json=get(F_POLICY),
        route_json=get(F_ROUTE),
        budget_json=get(F_BUDGET),
    )


def job_key(job_id: str) -> str:
    """Redis key of a job hash."""
    return keys.job(job_id)
