"""A value read from Redis at most every few hundred ms, one read at a time.

Thousands of jobs in flight ask at once; all but the first use the value they already
have (or wait for the very first read), and a failed read keeps the last value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.exceptions import RedisError

T = TypeVar("T")
log = logging.getLogger("aibroker.runtime")


class SharedView(Generic[T]):
    """`await view.get()`: the value, re-read when older than `max_age_s`."""

    def __init__(self, read: Callable[[], Awaitable[T]], initial: T, what: str,
                 max_age_s: float = 0.5) -> None:
        self._read = read
        self.value = initial
        self._what = what
        self._max_age_s = max_age_s
        self._at = 0.0
        self._refresh: asyncio.Future[None] | None = None

    async def get(self) -> T:
        """The value, no older than max_age_s unless Redis cannot be read."""
        if time.monotonic() - self._at <= self._max_age_s:
            return self.value
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._reread())
        if self._at == 0.0:
            await asyncio.shield(self._refresh)
        return self.value

    async def _reread(self) -> None:
        try:
            self.value = await self._read()
        except RedisError:
            log.warning("could not read %s; keeping the last one", self._what)
        finally:
            self._at = time.monotonic()
