"""Admission by Redis memory: refuse new jobs above a high-water mark of `maxmemory`."""

from __future__ import annotations

import time

import redis

from broker.errors import BrokerFull

# INFO is cheap but not free; one read a second bounds its cost whatever the submit rate.
CACHE_S = 1.0


class MemoryGuard:
    """Raises BrokerFull when Redis memory is above `high_water` of its `maxmemory`."""

    def __init__(self, client: redis.Redis, high_water: float) -> None:
        self._redis = client
        self._high_water = high_water
        self._read_at = float("-inf")
        self._full = False

    def check(self) -> None:
        """Refuse (BrokerFull) if the last reading, at most CACHE_S old, is above the mark."""
        now = time.monotonic()
        if now - self._read_at >= CACHE_S:
            info = self._redis.info("memory")
            limit = int(info.get("maxmemory", 0))
            self._full = limit > 0 and int(info["used_memory"]) >= self._high_water * limit
            self._read_at = now
        if self._full:
            raise BrokerFull(f"Redis memory is above {self._high_water:.0%} of maxmemory; "
                             "retry when the broker has drained")

    def refused(self) -> BrokerFull:
        """The error for a write Redis refused (OOM); the next check reads memory again."""
        self._read_at = float("-inf")
        return BrokerFull("Redis is out of memory (maxmemory reached); retry later")
