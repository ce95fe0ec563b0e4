"""Every Redis key the broker writes, in one place (prefix `aib:`)."""

from __future__ import annotations

import hashlib
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


def batch(batch_id: str) -> str:
    """Hash of a batch: status, timestamps, counters and usage (TTL: batch_ttl_s + window)."""
    return f"{PREFIX}batch:{batch_id}"


def batch_custom_ids(batch_id: str) -> str:
    """List of a batch's custom_ids, index-aligned with its job ids `<batch>-<index>`."""
    return f"{PREFIX}batch:{batch_id}:cids"


def batch_invalid(batch_id: str) -> str:
    """List of a batch's refused input lines as JSON (line, custom_id, code, message)."""
    return f"{PREFIX}batch:{batch_id}:invalid"


def batch_index() -> str:
    """Sorted set of batch ids scored by creation time (pruned as batch hashes expire)."""
    return f"{PREFIX}batches"


def batch_usage_day(day: str) -> str:
    """Usage of batch jobs per UTC day; fields from `batch_usage_field_prefix`."""
    return f"{PREFIX}usage:bd:{day}"


def batch_usage_hour(hour: str) -> str:
    """Usage of batch jobs per UTC hour (YYYYMMDDHH)."""
    return f"{PREFIX}usage:bh:{hour}"


def batch_usage_field_prefix(batch_id: str, tenant: str, model: str, deployment: str) -> str:
    """The start of a batch usage hash field; the metric name completes it."""
    return FIELD_SEP.join((batch_id, tenant, model, deployment)) + FIELD_SEP


def idempotency(scope: str, key_sha256: str, idempotency_key: str) -> str:
    """Job or batch id claimed by an idempotency key, per tenant key (TTL: idempotency_ttl_s).

    The caller's key is hashed so that any string of up to 256 characters makes a short key.
    """
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"{PREFIX}idem:{scope}:{key_sha256}:{digest}"


def tenant_keys() -> str:
    """Hash of issued tenant keys: SHA-256 of the key -> {tenant, expires}."""
    return f"{PREFIX}tenantkeys"


def audit_stream() -> str:
    """Stream of every policy decision (no prompt text)."""
    return f"{PREFIX}audit"


def budget(scope: str, period: str) -> str:
    """Hash of a budget's used and reserved tokens and nano-USD in one period."""
    return f"{PREFIX}budget:{scope}:{period}"


def budget_reserved(job_id: str) -> str:
    """Set once a job's budget reservation has been made (exactly once)."""
    return f"{PREFIX}budget:reserved:{job_id}"


def budget_settled(job_id: str) -> str:
    """Set once a job's budget reservation has been settled (exactly once)."""
    return f"{PREFIX}budget:settled:{job_id}"


def discarded_messages() -> str:
    """Count of queue messages dropped because they were not JSON envelopes."""
    return f"{PREFIX}discarded"


def quarantine() -> str:
    """List of the latest discarded messages as JSON (queue, reason, raw bytes capped)."""
    return f"{PREFIX}quarantine"


QUARANTINE_CAP = 1000  # entries kept in the quarantine list, newest first
QUARANTINE_ENTRY_BYTES = 4096  # raw bytes kept of each quarantined message


def capacity_prefix(scope: str) -> str:
    """Prefix of a capacity scope's per-second request (r:) and token (t:) buckets."""
    return f"{PREFIX}cap:{scope}:"


def capacity_leases(scope: str) -> str:
    """Sorted set of a scope's live concurrency leases, scored by expiry (ms)."""
    return f"{PREFIX}cap:{scope}:leases"


def capacity_ledger(scope: str) -> str:
    """Hash of tokens reserved, refunded and actually used in a scope."""
    return f"{PREFIX}cap:{scope}:ledger"


def open_attempts() -> str:
    """Sorted set of job ids with an upstream call open, scored by when it expires (ms)."""
    return f"{PREFIX}attempts"


def workers_alive() -> str:
    """Sorted set of consuming worker processes, scored by their last heartbeat (ms)."""
    return f"{PREFIX}workers"


def worker_held(worker_id: str) -> str:
    """Set of the delivery tags a worker process holds unacknowledged."""
    return f"{PREFIX}workers:{worker_id}:held"


def workers_sweep_lock() -> str:
    """Held by the one worker restoring the messages of dead workers."""
    return f"{PREFIX}workers:sweep"


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
# Upstream calls started and never settled (a worker lost mid-call): estimates, not billed.
LOST_METRICS = ("lost_requests", "lost_prompt_tokens", "lost_completion_tokens",
                "lost_cost_nanousd")


def cancellations() -> str:
    """Sorted set of recently cancelled job ids and `batch:<id>` members (score: time).

    Model workers read it every half second, so jobs they already hold stop before
    their upstream call, not only jobs still queued.
    """
    return f"{PREFIX}cancelled"
