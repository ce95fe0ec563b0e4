"""The Redis transport, hardened: one undecodable message must not stop a worker.

kombu's Redis channel decodes each popped list item as JSON inside its consumer loop;
an item that is not JSON (written by hand, by a foreign client, or truncated) raises out
of the loop and takes the whole worker down. This channel drops such an item, logs that
it did (never its content), counts it, keeps its first bytes in a bounded quarantine
list (broker/quarantine.py), and goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Empty
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import OutOfMemoryError

from broker import quarantine
from broker.liveness import TrackedQoS

log = logging.getLogger("aibroker.transport")


# What decoding or converting an ill-formed envelope raises: not JSON (ValueError), a
# body or headers of the wrong type (TypeError, AttributeError, KeyError), or nesting
# deep enough to exhaust the parser (RecursionError).
MALFORMED = (ValueError, TypeError, AttributeError, KeyError, RecursionError)


class SafeChannel(kombu_redis.Channel):
    """A Redis channel that survives undecodable messages.

    kombu's `_brpop_read` and `_get` are re-implemented around one narrow step that
    holds the raw item while it is decoded and delivered, so that a refused item can be
    quarantined as it was read; everything else (connection errors, queue rotation,
    re-authentication) is kombu's.
    """

    QoS = TrackedQoS  # a dead worker's messages come back without the visibility timeout

    def _discard(self, queue: str, reason: str, raw: bytes) -> None:
        try:
            with self.conn_or_acquire() as client:
                quarantine.record(client, queue, reason, raw)
        except Exception:  # recording is best effort; the consumer must keep going
            log.exception("could not record a discarded message")

    def _decoded(self, raw: bytes, queue: str) -> dict[str, Any] | None:
        """The item's envelope, or None once it is refused and quarantined."""
        try:
            payload = loads(bytes_to_str(raw))
        except MALFORMED as exc:
            self._discard(queue, type(exc).__name__, raw)
            return None
        reason = quarantine.refusal(payload, queue)
        if reason is not None:
            self._discard(queue, reason, raw)
            return None
        return payload  # type: ignore[no-any-return]

    def _deliver_raw(self, raw: bytes, queue: str) -> None:
        payload = self._decoded(raw, queue)
        if payload is None:
            raise Empty()
        try:
            self.connection._deliver(payload, queue)
        except self.connection_errors:  # type: ignore[attr-defined]
            raise
        except MALFORMED as exc:
            self._discard(queue, type(exc).__name__, raw)
            raise Empty() from None

    def _brpop_read(self, **options: Any) -> Any:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP",
                                                        **options)
            except self.connection_errors:  # type: ignore[attr-defined]
                # as kombu does: drop the socket so the next poll reconnects
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)  # type: ignore[attr-defined]
            self._deliver_raw(item, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()  # type: ignore[attr-defined]

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, pri))  # type: ignore[attr-defined]
                if item:
                    self._maybe_update_queues_expire(client, queue)  # type: ignore[attr-defined]
                    payload = self._decoded(item, queue)
                    if payload is None:
                        raise Empty()
                    return payload
            self._maybe_update_queues_expire(client, queue)  # type: ignore[attr-defined]
            raise Empty()


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
