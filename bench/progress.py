"""Progress lines on stderr, stamped with the time since the bench started."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()


def log(message: str) -> None:
    """Print one progress line to stderr."""
    elapsed = time.monotonic() - _STARTED
    minutes, seconds = divmod(int(elapsed), 60)
    print(f"[bench {minutes:02d}:{seconds:02d}] {message}", file=sys.stderr, flush=True)


class Ticker:
    """Logs `label: done/total` at most every `every_s` seconds."""

    def __init__(self, label: str, total: int, every_s: float = 3.0) -> None:
        self.label = label
        self.total = total
        self.every_s = every_s
        self.started = time.monotonic()
        self._last = self.started

    def update(self, done: int, force: bool = False) -> None:
        """Report progress when enough time has passed (or when forced)."""
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        rate = done / max(now - self.started, 1e-9)
        log(f"{self.label}: {done:,}/{self.total:,} done ({rate:,.0f}/s)")
