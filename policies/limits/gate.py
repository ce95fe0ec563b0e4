"""An in-process gate with lanes: interactive waiters are let in before batch waiters."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

LANE_ORDER = {"interactive": 0, "batch": 1}


class PriorityGate:
    """A semaphore whose waiters are served by lane, then in arrival order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        """Waiters not yet let in."""
        return sum(1 for *_, fut in self._waiters if not fut.done())

    @property
    def has_waiters(self) -> bool:
        """Whether anyone waits for a place (cheap: looks at the head only)."""
        while self._waiters and self._waiters[0][2].done():
            heapq.heappop(self._waiters)  # cancelled while waiting
        return bool(self._waiters)

    async def acquire(self, lane: str = "interactive") -> None:
        """Wait for a place."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (LANE_ORDER.get(lane, 1), next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # let in just as we were cancelled: pass the place on
            raise

    def release(self) -> None:
        """Free a place and hand it to the first waiter by lane."""
        self.in_use -= 1
        while self._waiters and self.in_use < self.limit:
            *_, future = heapq.heappop(self._waiters)
            if not future.done():
                self.in_use += 1
                future.set_result(None)

    @asynccontextmanager
    async def hold(self, lane: str = "interactive") -> AsyncIterator[None]:
        """`async with gate.hold(lane):` holds one place."""
        await self.acquire(lane)
        try:
            yield
        finally:
            self.release()
