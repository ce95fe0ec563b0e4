"""An upstream call gives up at timeout_s, not at the next whole second after it."""

from __future__ import annotations

import asyncio
from time import perf_counter

import pytest
from aiohttp import web

from broker.errors import UpstreamError
from workers.http import HttpSender, Transport
from workers.providers.base import HttpRequest

TIMEOUT_S = 5.0  # aiohttp rounds total timeouts of 5 s (its ceil_threshold) and more


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(text="too late")


async def _timed_call(transport: Transport) -> float:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _slow)
    runner = web.AppRunner(app, shutdown_timeout=0.2)  # the slow handler is abandoned
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sender = HttpSender(transport)
    request = HttpRequest("POST", f"http://127.0.0.1:{port}/v1/chat/completions",
                          {"content-type": "application/json"}, b"{}")
    loop = asyncio.get_running_loop()
    # Start just after a whole second of the loop's clock: a timeout rounded up to the next
    # whole second would then fire about 0.9 s late, so the bound below cannot pass by luck.
    await asyncio.sleep(1.0 - loop.time() % 1.0 + 0.02)
    started = perf_counter()
    try:
        with pytest.raises(UpstreamError, match="did not answer within 5s"):
            await sender.send(request, TIMEOUT_S)
        return perf_counter() - started
    finally:
        await sender.aclose()
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["aiohttp", "aiohttp-direct", "httpx"])
def test_timeout_is_honoured_to_the_fraction_of_a_second(transport: Transport) -> None:
    elapsed = asyncio.run(_timed_call(transport))
    assert elapsed >= TIMEOUT_S - 0.01
    # 50 ms is the target; the bound leaves room for a loaded machine's scheduling delay
    # and stays far below the 0.9 s that rounding adds from this start.
    assert elapsed < TIMEOUT_S + 0.4, elapsed
