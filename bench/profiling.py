"""Sampling profiles (py-spy) of the broker's processes during the measured throughput run.

`python -m bench --only throughput --profile` records every gateway and model worker and
the producer, and reports the functions where each spends its CPU. py-spy is optional:
`pip install py-spy`.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

_LINE_NUMBER = re.compile(r":\d+\)")
# Frames every sample of a thread passes through; they say nothing about where time goes.
_PLUMBING = re.compile(r"\((threading\.py|<frozen runpy>|click/|celery/bin/|celery/bootsteps|"
                       r"celery/worker/worker\.py|celery/apps/|concurrent/futures/thread\.py|"
                       r"bench/__main__\.py|bench/runner\.py)")


def py_spy() -> str | None:
    """The py-spy executable, next to this Python or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """Share of active samples per function: where it is on top (self) and anywhere (inclusive)."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_LINE_NUMBER.sub(")", frame) for frame in stack.split(";") if frame]
        if frames:
            own[frames[-1]] += samples
        for frame in set(frames):
            if not _PLUMBING.search(frame):
                anywhere[frame] += samples

    def shares(counter: Counter[str]) -> list[tuple[float, str]]:
        return [(round(100 * n / max(total, 1), 1), name) for name, n in counter.most_common(top)]

    return {"samples": total, "self": shares(own), "inclusive": shares(anywhere)}


class Profiles:
    """py-spy recorders attached to named processes; summaries when they stop."""

    def __init__(self, out_dir: Path, targets: dict[str, int], rate: int = 100) -> None:
        self.out_dir = out_dir
        self.targets = targets
        self.rate = rate
        self.recorders: dict[str, subprocess.Popen[bytes]] = {}
        self.summaries: dict[str, dict[str, Any]] = {}

    def _path(self, name: str) -> Path:
        return self.out_dir / f"profile-{name}.txt"

    def __enter__(self) -> Profiles:
        executable = py_spy()
        if executable is None:
            raise RuntimeError("--profile needs py-spy: pip install py-spy")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.targets.items():
            self.recorders[name] = subprocess.Popen(
                [executable, "record", "--pid", str(pid), "--rate", str(self.rate),
                 "--nonblocking", "--format", "raw", "-o", str(self._path(name))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for recorder in self.recorders.values():
            with contextlib.suppress(ProcessLookupError):
                recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for name, recorder in self.recorders.items():
            try:
                recorder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
            if self._path(name).exists():
                self.summaries[name] = summarize(self._path(name))
