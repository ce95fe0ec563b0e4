"""What producers send (JobRequest) and what they get back (JobResult)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class JobStatus(StrEnum):
    """Where a job is; the last five are terminal."""

    QUEUED = "queued"
    ADMITTED = "admitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self in TERMINAL


TERMINAL = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.EXPIRED,
     JobStatus.CANCELLED}
)
Lane = Literal["interactive", "batch"]


class ChatMessage(BaseModel):
    """One OpenAI chat message."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _text_parts(self) -> ChatMessage:
        # Counting and every adapter read a part's `text` as a string; anything else
        # would fail later in a worker, alone or taking its neighbours with it.
        for index, part in enumerate(self.content if isinstance(self.content, list) else []):
            if "text" in part and not isinstance(part["text"], str):
                raise ValueError(f"content part {index}: `text` must be a string")
        return self


def _unencodable(value: Any, where: str) -> str | None:
    """The path of the first string that UTF-8 cannot carry (a lone surrogate), if any."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path
        elif isinstance(item, dict):
            stack.extend((v, f"{path}.{k}") for k, v in item.items())
            stack.extend((k, f"{path} key") for k in item if isinstance(k, str))
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
    return None


class JobBody(BaseModel):
    """The OpenAI-format body of a job: chat `messages` or embeddings `input`, plus params."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128)
    messages: list[ChatMessage] | None = None
    input: str | list[str] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> JobBody:
        if (self.messages is None) == (self.input is None):
            raise ValueError("give exactly one of `messages` (chat) or `input` (embeddings)")
        if self.messages is not None and not self.messages:
            raise ValueError("`messages` must not be empty")
        if isinstance(self.input, list) and not self.input:
            raise ValueError("`input` must not be empty")
        return self

    @property
    def kind(self) -> Literal["chat", "embeddings"]:
        """Which endpoint the job calls."""
        return "chat" if self.messages is not None else "embeddings"

    @property
    def output_cap(self) -> int | None:
        """The most completion tokens the caller allows."""
        return self.max_completion_tokens or self.max_tokens


class JobRequest(JobBody):
    """A job as a producer submits it: the body plus who asks and how it should run."""

    api_key: SecretStr = Field(exclude=True)
    priority: Lane = "interactive"
    metadata: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str | None = Field(None, max_length=256)
    deadline: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _utf8_only(cls, data: Any) -> Any:
        # Checked once, here: a lone surrogate passes every other check, then cannot be
        # stored or sent, and the job would never end.
        if isinstance(data, dict):
            where = _unencodable(data, "job")
            if where is not None:
                raise ValueError(f"{where}: text is not valid Unicode (a lone surrogate)")
        return data

    def body(self) -> JobBody:
        """The OpenAI body alone (no key, no routing facts)."""
        return JobBody.model_validate(
            self.model_dump(include=set(JobBody.model_fields), exclude_none=True)
        )


class Usage(BaseModel):
    """Tokens of one job, as the upstream reported them (or counted, when `estimated`)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False


class Attempt(BaseModel):
    """One upstream call made for a job."""

    deployment: str
    status: Literal["ok", "error"]
    error_code: str | None = None
    duration_ms: float = 0.0
    http_status: int | None = Field(None, description="The upstream's HTTP status, if any.")


class Route(BaseModel):
    """Where the job ran and what it took to get there."""

    deployment: str | None = None
    model: str | None = Field(None, description="The model that served (a fallback, maybe).")
    attempts: list[Attempt] = Field(default_factory=list)


class Timings(BaseModel):
    """Milliseconds spent in each part of the journey."""

    queued: float = 0.0
    policy: float = 0.0
    upstream: float = 0.0
    total: float = 0.0


class ErrorInfo(BaseModel):
    """Why a job did not succeed; `code` is stable and machine-readable."""

    code: str
    message: str
    retryable: bool = False


class PolicyInfo(BaseModel):
    """What the policy stage decided and found (counts per kind, never the values)."""

    findings: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    redacted: bool = False
    version: str | None = None


class JobResult(BaseModel):
    """The terminal record of a job, stored exactly once under its id."""

    id: str
    status: JobStatus
    tenant: str | None = None
    model: str
    kind: Literal["chat", "embeddings"]
    response: dict[str, Any] | None = None
    usage: Usage = Usage()
    cost_usd: float = 0.0
    route: Route = Route()
    timings: Timings = Timings()
    error: ErrorInfo | None = None
    policy: PolicyInfo = PolicyInfo()
    metadata: dict[str, str] = Field(default_factory=dict)
    batch_id: str | None = Field(None, description="The batch the job belongs to, if any.")
    created_at: float
    finished_at: float

    @property
    def ok(self) -> bool:
        """True when the job succeeded."""
        return self.status is JobStatus.SUCCEEDED


class BatchStatus(StrEnum):
    """Where a batch is, with OpenAI's names; the last four are terminal."""

    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the batch can no longer change."""
        return self in (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED,
                        BatchStatus.CANCELLED)


class BatchRequestCounts(BaseModel):
    """OpenAI's counts: `completed` succeeded, `failed` ended any other way."""

    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchUsage(BaseModel):
    """Tokens billed for a batch: the sum over its jobs, kept by the ledger script."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: int = Field(0, description="Jobs whose usage was counted, not reported.")


class BatchLineError(BaseModel):
    """A refused input line (OpenAI's batch `errors.data` entry)."""

    code: str
    message: str
    line: int | None = None
    custom_id: str | None = None


class BatchErrors(BaseModel):
    """Refused input lines: the first ones in `data`, all of them counted in `total`."""

    object: Literal["list"] = "list"
    data: list[BatchLineError] = Field(default_factory=list)
    total: int = 0


class Batch(BaseModel):
    """A batch as OpenAI's Batch object shows it, plus usage, cost and status counts."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str | None = None
    input_file: str | None = None
    completion_window: str
    status: BatchStatus
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts = BatchRequestCounts()
    by_status: dict[str, int] = Field(default_factory=dict, description="Ended jobs by status.")
    usage: BatchUsage = BatchUsage()
    cost_usd: float = 0.0
    metadata: dict[str, str] = Field(default_factory=dict)
    errors: BatchErrors = BatchErrors()

    @property
    def done(self) -> int:
        """Jobs that have ended, whatever their status."""
        return self.request_counts.completed + self.request_counts.failed
