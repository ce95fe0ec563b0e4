"""Redis-side figures: commands run (INFO commandstats) and memory used (INFO memory)."""

from __future__ import annotations

from typing import Any

import redis


def connect(url: str) -> redis.Redis:
    """A plain client for reading INFO and flushing between runs."""
    return redis.Redis.from_url(url, decode_responses=True)


def command_counts(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started."""
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Calls per command between two readings, largest first, zeros dropped."""
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1]))


def used_memory(client: redis.Redis) -> int:
    """Bytes Redis has allocated for data (INFO memory used_memory)."""
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


def version(client: redis.Redis) -> str:
    """The server's version."""
    info: dict[str, Any] = client.info("server")
    return str(info["redis_version"])


def flush(client: redis.Redis) -> None:
    """Empty the database between runs (every worker of the previous run has stopped)."""
    client.flushall()
