"""CPU seconds and RSS of named process groups, read from the OS with psutil."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import psutil

MB = 1024 * 1024


def _tree(pid: int, children: bool = True) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)] if children else [root]
    except psutil.Error:
        return []


def _cpu_of(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def _rss_of(process: psutil.Process) -> float | None:
    try:
        return float(process.memory_info().rss) / MB
    except psutil.Error:
        return None


@dataclass(slots=True)
class CpuSnapshot:
    """CPU seconds per process (by pid) and of the whole machine, at one instant."""

    by_pid: dict[int, float]
    machine_busy: float
    at: float


@dataclass(slots=True)
class CpuDelta:
    """CPU seconds spent between two snapshots, per group, plus the rest of the machine."""

    groups: dict[str, float]
    machine_busy: float
    wall_s: float

    def others(self) -> float:
        """CPU seconds of processes outside every group (noise on a shared machine)."""
        return max(self.machine_busy - sum(self.groups.values()), 0.0)


@dataclass
class ProcWatch:
    """Process groups (producer, gateway, model, redis, simulator, ...) by their root pids.

    Walking process trees reads all of /proc, so members are found again only when the
    groups change or a CPU snapshot is taken, never on each RSS sample.
    """

    groups: dict[str, list[int]] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _alone: set[int] = field(default_factory=set)
    _members: dict[int, tuple[str, psutil.Process]] | None = None

    def add(self, group: str, pid: int, children: bool = True) -> None:
        """Count a process (and, unless told otherwise, its children) into a group."""
        self.groups.setdefault(group, []).append(pid)
        if not children:
            self._alone.add(pid)
        self._members = None

    def remove_group(self, group: str) -> None:
        """Forget a group whose processes have stopped."""
        self.groups.pop(group, None)
        self._members = None

    def refresh(self) -> dict[int, tuple[str, psutil.Process]]:
        """Find every member process again (children may have come or gone)."""
        found: dict[int, tuple[str, psutil.Process]] = {}
        for group, roots in self.groups.items():
            for root in roots:
                for process in _tree(root, root not in self._alone):
                    found.setdefault(process.pid, (group, process))
        self._members = found
        return found

    def _cached(self) -> dict[int, tuple[str, psutil.Process]]:
        return self._members if self._members is not None else self.refresh()

    def snapshot(self) -> CpuSnapshot:
        """CPU seconds of every process in every group, now."""
        by_pid: dict[int, float] = {}
        for pid, (_, process) in self.refresh().items():
            value = _cpu_of(process)
            by_pid[pid] = self._last[pid] = value if value is not None else self._last.get(pid,
                                                                                          0.0)
        machine = psutil.cpu_times()
        busy = float(sum(machine) - machine.idle - getattr(machine, "iowait", 0.0))
        return CpuSnapshot(by_pid, busy, time.perf_counter())

    def delta(self, before: CpuSnapshot, after: CpuSnapshot | None = None) -> CpuDelta:
        """CPU seconds per group between `before` and `after` (default: now)."""
        after = after or self.snapshot()
        groups = {name: 0.0 for name in self.groups}
        for pid, (group, _) in self._cached().items():
            spent = after.by_pid.get(pid, self._last.get(pid, 0.0)) - before.by_pid.get(pid, 0.0)
            groups[group] += max(spent, 0.0)
        return CpuDelta(groups, after.machine_busy - before.machine_busy, after.at - before.at)

    def rss_mb(self) -> dict[str, float]:
        """Resident memory per group in MiB, now."""
        totals = {name: 0.0 for name in self.groups}
        for group, process in self._cached().values():
            if group in totals:
                totals[group] += _rss_of(process) or 0.0
        return totals


class RssSampler:
    """Samples group RSS in a background thread and keeps each group's peak."""

    def __init__(self, watch: ProcWatch, interval_s: float = 0.5) -> None:
        self.watch = watch
        self.interval_s = interval_s
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for group, value in self.watch.rss_mb().items():
                self.peak[group] = max(self.peak.get(group, 0.0), value)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def own_pid() -> int:
    """The runner's pid: the producer of every broker run."""
    return os.getpid()
