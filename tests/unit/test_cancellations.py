"""Which job ids an announced cancellation covers."""

from __future__ import annotations

from broker import jobstore as js
from broker.cancellations import BATCH_MEMBER, is_cancelled


def test_a_job_is_covered_by_its_own_id_or_by_its_batch() -> None:
    batch_id = f"{js.BATCH_ID_PREFIX}abc123"
    announced = frozenset({"job-1", f"{BATCH_MEMBER}{batch_id}"})
    assert is_cancelled("job-1", announced)
    assert is_cancelled(js.batch_job_id(batch_id, 7), announced)
    assert not is_cancelled("job-2", announced)
    assert not is_cancelled(js.batch_job_id(f"{js.BATCH_ID_PREFIX}other", 7), announced)
    assert not is_cancelled("job-1", frozenset())
