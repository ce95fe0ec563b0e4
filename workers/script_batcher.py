"""Coalesces the Lua calls of many jobs in flight into one pipeline per loop iteration.

Hundreds of jobs of a model worker each take and give back capacity around their call;
sent one by one, every call pays the client's per-command round trip and bookkeeping.
Calls made during one turn of the event loop go out together instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError


class ScriptBatcher:
    """`await batcher.call(script, keys, args)` — same result as calling the script."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._pending: list[tuple[Any, list[Any], list[Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """Queue one script call and wait for its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._spawn, self._flush())
        return await future

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for script, keys, args, _ in batch:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection failed: every caller sees why
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (script, keys, args, future), reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError) or (
                    isinstance(reply, ResponseError) and "NOSCRIPT" in str(reply)):
                # Redis restarted and forgot its scripts: this call loads it again.
                self._spawn(self._retry(script, keys, args, future))
            elif isinstance(reply, Exception):
                future.set_exception(reply)
            elif not future.done():
                future.set_result(reply)

    @staticmethod
    async def _retry(script: Any, keys: list[Any], args: list[Any],
                     future: asyncio.Future[Any]) -> None:
        try:
            future.set_result(await script(keys=keys, args=args))
        except Exception as exc:
            future.set_exception(exc)
