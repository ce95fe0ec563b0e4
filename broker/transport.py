"""The Redis transport, hardened: one undecodable message must not stop a worker.

kombu's Redis channel decodes each popped list item as JSON inside its consumer loop;
an item that is not JSON (written by hand, by a foreign client, or truncated) raises out
of the loop and takes the whole worker down. This channel drops such an item, logs that
it did (never its content), counts it, and goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Empty
from redis.exceptions import OutOfMemoryError

from broker import keys
from broker.liveness import TrackedQoS

log = logging.getLogger("aibroker.transport")


# What decoding or converting an ill-formed envelope raises: not JSON (ValueError), a
# body or headers of the wrong type (TypeError, AttributeError, KeyError), or nesting
# deep enough to exhaust the parser (RecursionError).
MALFORMED = (ValueError, TypeError, AttributeError, KeyError, RecursionError)


class SafeChannel(kombu_redis.Channel):
    """A Redis channel that survives undecodable messages."""

    QoS = TrackedQoS  # a dead worker's messages come back without the visibility timeout

    def _discard(self, where: str, exc: Exception) -> None:
        log.error("discarded a message on %s that is not a JSON envelope (%s)", where,
                  type(exc).__name__)
        try:
            with self.conn_or_acquire() as client:
                client.incr(keys.discarded_messages())
        except Exception:  # counting is best effort; the consumer must keep going
            log.exception("could not count a discarded message")

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)  # type: ignore[misc]
        except self.connection_errors:  # type: ignore[attr-defined]
            raise
        except MALFORMED as exc:
            self._discard("a consumed queue", exc)
            raise Empty() from None

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        try:
            return super()._get(queue)
        except self.connection_errors:  # type: ignore[attr-defined]
            raise
        except MALFORMED as exc:
            self._discard(queue, exc)
            raise Empty() from None


class FullRedisPatientQoS(TrackedQoS):
    """Ack emulation that waits out a full Redis instead of killing the consumer.

    Recording a delivery as unacked (ZADD + HSET in MULTI) is refused by a Redis at
    maxmemory with noeviction; kombu lets that OutOfMemoryError end the worker. Retrying
    keeps the message safe: it is not acknowledged until the write succeeds.
    """

    def append(self, message: Any, delivery_tag: Any) -> None:
        """Record the delivery, retrying while Redis is full."""
        _while_full(lambda: super(FullRedisPatientQoS, self).append(message, delivery_tag))

    def ack(self, delivery_tag: Any) -> None:
        """Acknowledge, retrying while Redis is full."""
        _while_full(lambda: super(FullRedisPatientQoS, self).ack(delivery_tag))


def _while_full(step: Callable[[], None]) -> None:
    delay = 0.25
    while True:
        try:
            step()
            return
        except OutOfMemoryError as exc:
            log.warning("Redis is full (%s); retrying in %.2f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class FullRedisPatientChannel(SafeChannel):
    """SafeChannel whose held-message tracking also waits out a full Redis."""

    QoS = FullRedisPatientQoS


class SafeRedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with SafeChannel and FullRedisPatientQoS."""

    Channel = FullRedisPatientChannel
    _conninfo: Any = None

    @property
    def client(self) -> Any:
        """The kombu Connection whose settings this transport's channels connect with."""
        return self._conninfo

    @client.setter
    def client(self, value: Any) -> None:
        # kombu drops the Connection when it collects it, yet after a lost connection
        # Celery still closes a channel whose first close the lost socket cut short (a
        # BRPOP was pending) and whose second was skipped (another channel's close failed
        # first). That close restores the channel's unacknowledged messages through a
        # pool built from these settings: without them an AttributeError ('NoneType' has
        # no 'hostname', kombu #582, #970), which no teardown guard catches, ends the
        # worker. With them the restore reaches Redis, or fails with a connection error
        # that teardown ignores (the messages stay held until they are restored).
        if value is not None:
            self._conninfo = value
