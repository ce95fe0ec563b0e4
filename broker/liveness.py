"""Worker liveness: a dead worker's unacknowledged messages come back in seconds, not hours.

kombu's Redis transport keeps every delivered, unacknowledged message in the `unacked`
hash and restores it once the visibility timeout (an hour by default) has passed, so a
killed worker's jobs used to wait that long. Here each consuming process

- beats: a daemon thread stamps the process's id in a sorted set every couple of seconds
  (it keeps beating while a warm shutdown drains the process's tasks), and with each beat
  the names of the queues it consumes, which `aibroker status` reads;
- says what it holds: its channel adds each delivery tag to a set of its own, in the
  same pipeline that records the message as unacknowledged, and removes it on ack;
- sweeps: every few seconds (kombu's restore timer) it looks for processes whose beat is
  older than HEARTBEAT_TTL_S and, under a lock, frees the capacity leases they held (lease
  ids start with the process's id) and restores the messages they held with kombu's own
  `restore_by_tag`, the same transaction the visibility timeout uses, so a message is put
  back once however many sweepers race.

A process whose own beats failed lately (a Redis outage: every beat is then old) does
not sweep until beats have been flowing again for a full ttl, so live workers that were
cut off too are not mistaken for dead ones. Jobs are idempotent per id (results, usage
and budgets are stored once), so a worker wrongly thought dead costs a repeated call,
never a repeated effect; the visibility timeout stays as the last resort.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps

from broker import keys

log = logging.getLogger("aibroker.liveness")

HEARTBEAT_TTL_S = 10.0  # a process unheard of for this long is dead
HEARTBEAT_EVERY_S = 2.0
_SWEEP_LOCK_S = 30
_DEAD_PER_SWEEP = 16

# Drops a dead process's entry and its held set, unless it has beaten again meanwhile.
_FORGET = """
local beat = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0') or 0
if beat >= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1
"""
_QUEUES_TTL_S = 60  # beats refresh it; readers only trust the entries of live processes

_identity: tuple[int, str] | None = None


def worker_id() -> str:
    """This process's identity among workers: host, pid and a nonce (pids are reused)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        _identity = (pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(3)}")
    return _identity[1]


def worker_queues(member: str) -> str:
    """Set of the queues a worker process consumes, written with its beats."""
    return f"{keys.workers_alive()}:{member}:queues"


# The channels of this process that consume (weakly held: a closed channel drops out).
_consuming: weakref.WeakSet[Any] = weakref.WeakSet()


def consumed_queues() -> set[str]:
    """The queues this process's channels consume now."""
    return {str(queue) for channel in list(_consuming)
            for queue in list(getattr(channel, "_active_queues", ()))}


def live_consumers(client: redis.Redis) -> dict[str, int]:
    """How many live worker processes consume each queue."""
    found: list[Any] = client.zrangebyscore(keys.workers_alive(), dead_before(), "+inf")
    live = [bytes_to_str(member) for member in found]
    with client.pipeline(transaction=False) as pipe:
        for member in live:
            pipe.smembers(worker_queues(member))
        replies: list[set[Any]] = pipe.execute()
    counts: dict[str, int] = {}
    for queues in replies:
        for queue in queues:
            name = bytes_to_str(queue)
            counts[name] = counts.get(name, 0) + 1
    return counts


def lease_owner_prefix() -> str:
    """What starts the id of every capacity lease this process takes."""
    return f"{worker_id()}/"


def now_ms() -> int:
    """Milliseconds of the wall clock, the unit beats and expiries are kept in."""
    return int(time.time() * 1000)


def dead_before(at_ms: int | None = None) -> int:
    """Beats older than this (ms) are a dead process's."""
    return (now_ms() if at_ms is None else at_ms) - int(HEARTBEAT_TTL_S * 1000)


class Heartbeat:
    """A daemon thread keeping this process's entry in the live-workers set fresh."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._healthy_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aibroker-heartbeat",
                                        daemon=True)

    def start(self) -> None:
        """Beat once now, then every HEARTBEAT_EVERY_S."""
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (the entry then ages out like a dead process's)."""
        self._stop.set()

    def beat(self) -> bool:
        """Stamp this process as alive; False when Redis could not be reached."""
        member = worker_id()
        queues = consumed_queues()
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.zadd(keys.workers_alive(), {member: now_ms()})
                if queues:
                    # Replaced whole in one transaction: a reader never sees it half written.
                    pipe.delete(worker_queues(member))
                    pipe.sadd(worker_queues(member), *sorted(queues))
                    pipe.expire(worker_queues(member), _QUEUES_TTL_S)
                pipe.execute()
        except redis.RedisError as exc:
            if self._healthy_since is not None:
                log.warning("worker heartbeat failed: %s", exc)
            self._healthy_since = None
            return False
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
        return True

    def healthy_for(self) -> float:
        """Seconds since beats last started flowing without a failure (0 while failing)."""
        since = self._healthy_since
        return 0.0 if since is None else time.monotonic() - since

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            self.beat()


_heartbeat: Heartbeat | None = None
_heartbeat_lock = threading.Lock()


def ensure_heartbeat(connect: Callable[[], redis.Redis]) -> Heartbeat:
    """The process's heartbeat, started on first use with a client from `connect`."""
    global _heartbeat
    with _heartbeat_lock:
        if _heartbeat is None or not _heartbeat._thread.is_alive():
            _heartbeat = Heartbeat(connect())
            _heartbeat.start()
        return _heartbeat


class TrackedQoS(kombu_redis.QoS):
    """kombu's Redis ack emulation, with each held message filed under its process."""

    def append(self, message: Any, delivery_tag: str) -> None:
        """Record the message as unacknowledged and as held by this process, together."""
        delivery = message.delivery_info
        exchange, routing_key = delivery["exchange"], delivery["routing_key"]
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}) \
                .hset(self.unacked_key, delivery_tag,
                      dumps([message._raw, exchange, routing_key])) \
                .sadd(keys.worker_held(worker_id()), delivery_tag) \
                .execute()
            virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        return super()._remove_from_indices(  # type: ignore[misc]
            delivery_tag, pipe).srem(
            keys.worker_held(worker_id()), delivery_tag)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        """kombu's visibility-timeout restore, then the messages of dead processes."""
        super().restore_visible(start, num, interval)
        try:
            _consuming.add(self._channel())
            heartbeat = ensure_heartbeat(self._client)
            if heartbeat.healthy_for() >= HEARTBEAT_TTL_S + HEARTBEAT_EVERY_S:
                with self._channel().conn_or_acquire() as client:
                    restore_dead_workers(self, client)
        except Exception as exc:  # the consumer's timer must never raise: next sweep retries
            log.warning("could not restore the messages of lost workers: %s", exc)

    def _channel(self) -> Any:
        return self.channel

    def _client(self) -> redis.Redis:
        # The channel's own connection settings; redis-py's pool is thread-safe.
        return redis.Redis(connection_pool=self._channel().pool)


def restore_dead_workers(qos: kombu_redis.QoS, client: redis.Redis) -> int:
    """Put back on their queues the messages held by dead processes; how many."""
    threshold = dead_before()
    found: list[Any] = client.zrangebyscore(
        keys.workers_alive(), "-inf", threshold, start=0, num=_DEAD_PER_SWEEP)
    dead = [bytes_to_str(member) for member in found]
    dead = [member for member in dead if member != worker_id()]
    if not dead:
        return 0
    restored = 0
    try:
        with kombu_redis.Mutex(client, keys.workers_sweep_lock(), _SWEEP_LOCK_S):
            for member in dead:
                restored += _restore_worker(qos, client, member, threshold)
    except kombu_redis.MutexHeld:
        return 0
    return restored


def _glob_escape(text: str) -> str:
    return "".join(f"[{char}]" if char in "*?[]\\" else char for char in text)


def free_leases(client: redis.Redis, member: str) -> int:
    """Give back every capacity lease a dead process held; how many."""
    pattern = _glob_escape(f"{member}/") + "*"
    freed = 0
    for key in client.scan_iter(match=keys.capacity_leases("*"), count=1000):
        stale = [lease for lease, _ in client.zscan_iter(key, match=pattern, count=1000)]
        if stale:
            freed += int(client.zrem(key, *stale))
    return freed


def _restore_worker(qos: kombu_redis.QoS, client: redis.Redis, member: str,
                    threshold: int) -> int:
    # Its capacity first, so the jobs put back can start at once instead of waiting for
    # its leases to expire.
    freed = free_leases(client, member)
    held = keys.worker_held(member)
    tags = [bytes_to_str(tag) for tag in client.smembers(held)]
    for tag in tags:
        qos.restore_by_tag(tag, client)
    client.eval(_FORGET, 3, keys.workers_alive(), held, worker_queues(member), member,
                threshold)
    if tags or freed:
        log.warning("worker %s stopped beating: %d messages it held are back on their "
                    "queues, %d capacity leases freed", member, len(tags), freed)
    return len(tags)
