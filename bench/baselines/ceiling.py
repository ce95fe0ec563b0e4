"""The client-side ceiling: direct asyncio calls to the provider with a semaphore.

`python -m bench.baselines.ceiling --url URL --client aiohttp --jobs N --concurrency 256`
prints one JSON line: jobs/s and the client's own CPU over the measured calls. With
`--rate R` it paces calls at R per second instead and reports their wall times.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from bench.config import UPSTREAM_MODEL, chat_body

Call = Callable[[dict[str, Any]], Awaitable[bool]]
CLIENTS = ("aiohttp", "httpx", "litellm")


def litellm_available() -> bool:
    """Whether LiteLLM is importable (it is never installed by the bench)."""
    return importlib.util.find_spec("litellm") is not None


async def _make_call(stack: AsyncExitStack, client: str, url: str, concurrency: int) -> Call:
    endpoint = f"{url}/v1/chat/completions"
    if client == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=concurrency)
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))

        async def call_aiohttp(body: dict[str, Any]) -> bool:
            async with session.post(endpoint, json=body) as reply:
                await reply.json()
                return reply.status == 200

        return call_aiohttp
    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http = await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=30.0))

        async def call_httpx(body: dict[str, Any]) -> bool:
            reply = await http.post(endpoint, json=body)
            reply.json()
            return reply.status_code == 200

        return call_httpx
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network look-ups
    litellm: Any = importlib.import_module("litellm")

    router = litellm.Router(model_list=[{"model_name": "bench", "litellm_params": {
        "model": f"openai/{UPSTREAM_MODEL}", "api_base": f"{url}/v1", "api_key": "sk-bench"}}])

    async def call_litellm(body: dict[str, Any]) -> bool:
        await router.acompletion(model="bench", messages=body["messages"],
                                 max_tokens=body["max_tokens"])
        return True

    return call_litellm


async def _burst(call: Call, count: int, concurrency: int, start: int) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> bool:
        async with gate:
            return await call(chat_body(i))

    return sum(await asyncio.gather(*(one(start + i) for i in range(count))))


async def _paced(call: Call, count: int, rate: float) -> list[float]:
    walls: list[float] = []

    async def one(i: int) -> None:
        started = time.perf_counter()
        await call(chat_body(i))
        walls.append((time.perf_counter() - started) * 1000)

    tasks = []
    for i in range(count):
        tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    return walls


async def measure(client: str, url: str, jobs: int, concurrency: int, warmup: int,
                  rate: float | None) -> dict[str, Any]:
    """Warm up, then time `jobs` calls (as fast as allowed, or paced at `rate`)."""
    async with AsyncExitStack() as stack:
        call = await _make_call(stack, client, url, concurrency)
        await _burst(call, warmup, concurrency, 50_000_000)
        cpu, started = time.process_time(), time.perf_counter()
        if rate:
            walls = await _paced(call, jobs, rate)
            ok = len(walls)
        else:
            walls, ok = [], await _burst(call, jobs, concurrency, 0)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    return {"client": client, "jobs": jobs, "ok": ok, "concurrency": concurrency,
            "elapsed_s": round(elapsed, 3), "jobs_per_s": round(ok / elapsed, 1),
            "cpu_s": round(cpu, 3), "cpu_ms_per_job": round(cpu * 1000 / max(ok, 1), 4),
            "wall_ms": [round(w, 3) for w in walls]}


def main(argv: list[str] | None = None) -> int:
    """Command line of the ceiling client (run in its own process by the bench)."""
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.ceiling")
    parser.add_argument("--url", required=True, help="simulated provider root URL")
    parser.add_argument("--client", choices=CLIENTS, default="aiohttp")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=256)
    parser.add_argument("--rate", type=float, default=None, help="paced calls per second")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on some platforms
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(measure(args.client, args.url, args.jobs, args.concurrency, args.warmup,
                            args.rate))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
