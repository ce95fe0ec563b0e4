"""Local processes for the demo, tests and benchmarks: a private Redis and child processes.

Everything started here is stopped again, on normal exit, on exceptions and on Ctrl-C.
A child spawned with `restart=True` (every worker) is started again when it exits on its
own, at most MAX_RESTARTS times in RESTART_WINDOW_S, so that a crash costs seconds, not
the jobs it would strand; a child stopped through the group is never restarted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis

log = logging.getLogger("aibroker.localstack")

MAX_RESTARTS = 5  # per child, within RESTART_WINDOW_S: a child that keeps dying stays dead
RESTART_WINDOW_S = 60.0
_WATCH_EVERY_S = 0.25


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_reachable(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at `url`."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


class EmbeddedRedis:
    """A private redis-server on a free port in a temporary directory (AOF on)."""

    def __init__(self, *, appendonly: bool = True, executable: str | None = None) -> None:
        found = executable or shutil.which("redis-server")
        if found is None:
            raise FileNotFoundError(
                "redis-server is not installed: `apt-get install redis-server` "
                "(the Makefile's setup does it), or set AIBROKER_REDIS_URL")
        self.executable = found
        self.appendonly = appendonly
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="aibroker-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of the private server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until it answers."""
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
                "--logfile", str(self.dir / "redis.log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not redis_reachable(self.url, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL the server (fault tests); its AOF stays for a restart."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the server as an operator would (SIGTERM: the AOF is flushed); keep its data."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=timeout)
            self.process = None

    def restart(self) -> None:
        """Start again on the same port and directory."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProcessGroup:
    """Child processes started together and always stopped together."""

    def __init__(self, log_dir: Path | None = None, max_restarts: int = MAX_RESTARTS,
                 restart_window_s: float = RESTART_WINDOW_S) -> None:
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="aibroker-logs-"))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self._supervised: dict[str, tuple[list[str], dict[str, str]]] = {}
        self._restarts: dict[str, deque[float]] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def spawn(self, name: str, args: Sequence[str], env: dict[str, str] | None = None,
              ready_line: str | None = None, timeout: float = 30.0,
              restart: bool = False) -> subprocess.Popen[bytes]:
        """Start a child with output in `<log_dir>/<name>.log`; wait for `ready_line`.

        With `restart`, the child is started again whenever it exits on its own."""
        with self._lock:
            process = self._start(name, list(args), env or {})
            if restart:
                self._supervised[name] = (list(args), env or {})
                self._watch()
        if ready_line is not None:
            self.wait_for_line(name, ready_line, timeout)
        return process

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT,
                                       env={**os.environ, **env}, start_new_session=True)
        self.processes[name] = process
        return process

    def _watch(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._stopping.clear()
            self._watcher = threading.Thread(target=self._watch_loop, daemon=True,
                                             name="aibroker-supervisor")
            self._watcher.start()

    def _watch_loop(self) -> None:
        while not self._stopping.wait(_WATCH_EVERY_S):
            self.restart_exited()

    def restart_exited(self) -> list[str]:
        """Start again every supervised child that exited on its own; the names restarted."""
        restarted: list[str] = []
        with self._lock:
            for name, (args, env) in list(self._supervised.items()):
                process = self.processes.get(name)
                if self._stopping.is_set() or process is None or process.poll() is None:
                    continue
                if not self._may_restart(name):
                    log.error("%s exited (status %s) %d times within %g s; not restarting it",
                              name, process.returncode, self.max_restarts + 1,
                              self.restart_window_s)
                    del self._supervised[name]
                    continue
                new = self._start(name, args, env)
                log.warning("%s (pid %d) exited with status %s; restarted it as pid %d",
                            name, process.pid, process.returncode, new.pid)
                restarted.append(name)
        return restarted

    def restarts(self) -> dict[str, int]:
        """How many times each child was restarted within the last restart window."""
        with self._lock:
            return {name: len(times) for name, times in self._restarts.items() if times}

    def _may_restart(self, name: str) -> bool:
        now = time.monotonic()
        recent = self._restarts.setdefault(name, deque())
        while recent and now - recent[0] > self.restart_window_s:
            recent.popleft()
        if len(recent) >= self.max_restarts:
            return False
        recent.append(now)
        return True

    def wait_for_line(self, name: str, text: str, timeout: float = 30.0) -> str:
        """Wait until a child's log has a line containing `text`; return that line."""
        deadline = time.monotonic() + timeout
        log_path = self.log_dir / f"{name}.log"
        while time.monotonic() < deadline:
            for line in log_path.read_text(errors="replace").splitlines():
                if text in line:
                    return line
            if self.processes[name].poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{name} did not print {text!r} in {timeout} s; last lines:\n{tail}")

    def log(self, name: str) -> str:
        """Everything a child has printed so far."""
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send a signal to one child's whole process group and reap it (never restarted)."""
        with self._lock:
            self._supervised.pop(name, None)
            process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop_all(self, timeout: float = 15.0) -> None:
        """Ask every child to stop (SIGTERM), then kill what is left; none is restarted."""
        self._stopping.set()
        with self._lock:
            self._supervised.clear()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()
