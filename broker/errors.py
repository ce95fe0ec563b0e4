"""The broker's exception tree; every error that ends a job lands in its result.

    BrokerError                       code            retryable
    ├── ConfigError                   config_invalid
    ├── InvalidArgument               invalid_argument                (a command-line argument)
    ├── RedisUnreachable              redis_unreachable
    ├── WaitTimeout                   wait_timeout                    (the jobs go on)
    ├── ValidationError               invalid_request
    ├── JobNotFound                   not_found
    ├── PolicyRejection               (see subclasses)
    │   ├── AuthenticationFailed      unauthenticated
    │   ├── ModelNotAllowed           model_not_allowed
    │   ├── UnknownModel              unknown_model
    │   ├── InputTooLarge             input_too_large
    │   ├── OutputTooLarge            output_too_large
    │   ├── KindNotAllowed            kind_not_allowed
    │   ├── LaneNotAllowed            lane_not_allowed
    │   ├── RateLimited               rate_limited
    │   ├── BudgetExceeded            budget_exceeded
    │   ├── PiiDetected               pii_detected
    │   ├── PromptInjection           prompt_injection
    │   └── DeniedContent             denied_content
    ├── UpstreamError                 upstream_error
    │   ├── UpstreamRateLimited       upstream_rate_limited     yes
    │   ├── UpstreamUnavailable       upstream_unavailable      yes   (5xx)
    │   ├── UpstreamTimeout           upstream_timeout          yes
    │   ├── UpstreamConnectionError   upstream_connection       yes
    │   ├── UpstreamBadResponse       upstream_bad_response     yes   (unparseable body)
    │   └── UpstreamRejected          upstream_rejected         no    (4xx other than 429)
    ├── JobExpired                    deadline_exceeded
    ├── JobCancelled                  cancelled
    ├── TimeLimitExceeded             time_limit_exceeded
    ├── InternalError                 internal_error
    ├── InvalidJob                    invalid_job               no    (one job a stage cannot run)
    └── BrokerFull                    broker_full               yes   (Redis near maxmemory)

`code` is a stable string: clients match on it, so it never changes once released.
"""

from __future__ import annotations

from typing import ClassVar


class BrokerError(Exception):
    """Root of every error the broker raises or records in a job result."""

    code: ClassVar[str] = "broker_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, object]:
        """The error as it appears in a job result."""
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class ConfigError(BrokerError):
    code = "config_invalid"


class InvalidArgument(BrokerError):
    """A command-line argument the CLI cannot use (the message says which and why)."""

    code = "invalid_argument"


class RedisUnreachable(BrokerError):
    """No Redis answers at the catalog's redis_url (or AIBROKER_REDIS_URL)."""

    code = "redis_unreachable"


class WaitTimeout(BrokerError):
    """A caller stopped waiting for jobs that had not finished; they go on running."""

    code = "wait_timeout"


class ValidationError(BrokerError):
    code = "invalid_request"


class JobNotFound(BrokerError):
    code = "not_found"


class PolicyRejection(BrokerError):
    code = "policy_rejected"


class AuthenticationFailed(PolicyRejection):
    code = "unauthenticated"


class ModelNotAllowed(PolicyRejection):
    code = "model_not_allowed"


class UnknownModel(PolicyRejection):
    code = "unknown_model"


class InputTooLarge(PolicyRejection):
    code = "input_too_large"


class PiiDetected(PolicyRejection):
    """The prompt holds personal data (the message names kinds and counts, never values)."""

    code = "pii_detected"


class PromptInjection(PolicyRejection):
    """The prompt scored at or above the tenant's prompt-injection threshold."""

    code = "prompt_injection"


class DeniedContent(PolicyRejection):
    """The prompt matched one of the tenant's deny-list patterns."""

    code = "denied_content"


class OutputTooLarge(PolicyRejection):
    code = "output_too_large"


class KindNotAllowed(PolicyRejection):
    code = "kind_not_allowed"


class LaneNotAllowed(PolicyRejection):
    code = "lane_not_allowed"


class RateLimited(PolicyRejection):
    code = "rate_limited"


class BudgetExceeded(PolicyRejection):
    code = "budget_exceeded"


class UpstreamError(BrokerError):
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.status = status
        self.retry_after = retry_after


class UpstreamRateLimited(UpstreamError):
    code = "upstream_rate_limited"
    retryable = True


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    retryable = True


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    retryable = True


class UpstreamConnectionError(UpstreamError):
    code = "upstream_connection"
    retryable = True


class UpstreamBadResponse(UpstreamError):
    code = "upstream_bad_response"
    retryable = True


class UpstreamRejected(UpstreamError):
    code = "upstream_rejected"


class JobExpired(BrokerError):
    code = "deadline_exceeded"


class JobCancelled(BrokerError):
    code = "cancelled"


class TimeLimitExceeded(BrokerError):
    code = "time_limit_exceeded"


class InternalError(BrokerError):
    code = "internal_error"


class InvalidJob(BrokerError):
    """A job a stage could not process; it ends alone, the rest of its batch goes on."""

    code = "invalid_job"


class BrokerFull(BrokerError):
    """Redis is at its memory high-water mark: no new job is admitted until it drains."""

    code = "broker_full"
    retryable = True
