"""Local processes for the demo, tests and benchmarks: a private Redis and child processes.

Everything started here is stopped again, on normal exit, on exceptions and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis


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

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="aibroker-logs-"))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, args: Sequence[str], env: dict[str, str] | None = None,
              ready_line: str | None = None, timeout: float = 30.0) -> subprocess.Popen[bytes]:
        """Start a child with output in `<log_dir>/<name>.log`; wait for `ready_line`."""
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, **(env or {})},
                                       start_new_session=True)
        self.processes[name] = process
        if ready_line is not None:
            self.wait_for_line(name, ready_line, timeout)
        return process

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
        """Send a signal to one child's whole process group and reap it."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop_all(self, timeout: float = 15.0) -> None:
        """Ask every child to stop (SIGTERM), then kill what is left."""
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
