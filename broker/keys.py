"""Every Redis key the broker writes, in one place (prefix `aib:`)."""

from __future__ import annotations

import time

PREFIX = "aib:"
FIELD_SEP = "\t"  # never valid inside tenant, model or deployment names


def job(job_id: str) -> str:
    """Hash with the job's payload and progress fields (TTL: payload_ttl_s)."""
    return f"{PREFIX}job:{job_id}"


def result(job_id: str) -> str:
    """The terminal JobResult as JSON (TTL: result_ttl_s)."""
    return f"{PREFIX}result:{job_id}"


def done(job_id: str) -> str:
    """A one-element list pushed when the job ends, so waiters can block on it."""
    return f"{PREFIX}done:{job_id}"


def usage_day(day: str) -> str:
    """Usage aggregates of one UTC day (YYYYMMDD); fields from `usage_field`."""
    return f"{PREFIX}usage:d:{day}"


def usage_hour(hour: str) -> str:
    """Usage aggregates of one UTC hour (YYYYMMDDHH)."""
    return f"{PREFIX}usage:h:{hour}"


def status_counts(day: str) -> str:
    """Terminal statuses counted per UTC day, field `tenant<TAB>status`."""
    return f"{PREFIX}counts:{day}"


def discarded_messages() -> str:
    """Count of queue messages dropped because they were not JSON envelopes."""
    return f"{PREFIX}discarded"


def capacity_prefix(scope: str) -> str:
    """Prefix of a capacity scope's per-second request (r:) and token (t:) buckets."""
    return f"{PREFIX}cap:{scope}:"


def capacity_leases(scope: str) -> str:
    """Sorted set of a scope's live concurrency leases, scored by expiry (ms)."""
    return f"{PREFIX}cap:{scope}:leases"


def capacity_ledger(scope: str) -> str:
    """Hash of tokens reserved, refunded and actually used in a scope."""
    return f"{PREFIX}cap:{scope}:ledger"


def deployment_state(deployment: str) -> str:
    """Hash of a deployment's adaptive factor, latency EWMA and circuit state."""
    return f"{PREFIX}dep:{deployment}"


def probe_lock(deployment: str) -> str:
    """Held by the one job probing a deployment whose circuit is half-open."""
    return f"{PREFIX}dep:{deployment}:probe"


def usage_field_prefix(tenant: str, model: str, deployment: str) -> str:
    """The start of a usage hash field; the metric name completes it."""
    return FIELD_SEP.join((tenant, model, deployment)) + FIELD_SEP


def day_and_hour(timestamp: float | None = None) -> tuple[str, str]:
    """UTC day (YYYYMMDD) and hour (YYYYMMDDHH) buckets of a timestamp."""
    stamp = time.strftime("%Y%m%d%H", time.gmtime(timestamp if timestamp is not None else
                                                    time.time()))
    return stamp[:8], stamp


USAGE_METRICS = ("requests", "prompt_tokens", "completion_tokens", "cost_nanousd", "estimated")
