"""Reading job records for a batch in one pipelined round trip."""

from __future__ import annotations

import redis.asyncio as aioredis

from broker import jobstore as js
from broker.jobstore import JobRecord


async def load_records(client: aioredis.Redis, job_ids: list[str]) -> list[JobRecord | None]:
    """The records of a batch of jobs, None where the payload is gone."""
    async with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hgetall(js.job_key(job_id))
        rows = await pipe.execute()
    return [js.decode_hash(job_id, row) for job_id, row in zip(job_ids, rows, strict=True)]
