"""The Redis transport, hardened: one undecodable message must not stop a worker.

kombu's Redis channel decodes each popped list item as JSON inside its consumer loop;
an item that is not JSON (written by hand, by a foreign client, or truncated) raises out
of the loop and takes the whole worker down. This channel drops such an item, logs that
it did (never its content), counts it, and goes on.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Empty

from broker import keys
from broker.liveness import TrackedQoS

log = logging.getLogger("aibroker.transport")


class SafeChannel(kombu_redis.Channel):
    """A Redis channel that survives undecodable messages."""

    QoS = TrackedQoS  # a dead worker's messages come back without the visibility timeout

    def _discard(self, where: str, exc: ValueError) -> None:
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
        except ValueError as exc:
            self._discard("a consumed queue", exc)
            raise Empty() from None

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        try:
            return super()._get(queue)
        except ValueError as exc:
            self._discard(queue, exc)
            raise Empty() from None


class SafeRedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with SafeChannel."""

    Channel = SafeChannel
