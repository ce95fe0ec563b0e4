"""The one module that sends HTTP: a pooled async client and the map from its failures to ours."""

from __future__ import annotations

import asyncio
import math
from time import perf_counter
from typing import Literal

import aiohttp
import httpx
import httpx_aiohttp

from broker.errors import (
    UpstreamBadResponse,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeout,
)
from workers.providers.base import HttpReply, HttpRequest

# aiohttp: httpx's API over the httpx-aiohttp transport (default); httpx: httpx's own pool;
# aiohttp-direct: aiohttp alone, without httpx's request/response layer (cheapest in CPU).
Transport = Literal["aiohttp", "httpx", "aiohttp-direct"]
TRANSPORTS: tuple[Transport, ...] = ("aiohttp", "httpx", "aiohttp-direct")
_DETAIL_CHARS = 200
# Everything the client stacks raise for a failed exchange (aiohttp raises a bare ValueError
# for a control character in a header); anything else is a bug and propagates, as does
# CancelledError, a BaseException.
_TRANSPORT_ERRORS = (httpx.HTTPError, httpx.InvalidURL, aiohttp.ClientError, OSError, ValueError)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text[:_DETAIL_CHARS]}" if text else name


# Faults of the request itself: their messages echo the URL (which may carry a key in its
# query) or the illegal header value, so only the class name is kept, and retrying is futile.
_BAD_URL = (httpx.InvalidURL, httpx.UnsupportedProtocol, aiohttp.InvalidURL,
            aiohttp.NonHttpUrlClientError)
_BAD_REQUEST = (httpx.LocalProtocolError,)


def _classify(exc: BaseException, timeout_s: float) -> UpstreamError | None:
    # Order matters: several timeout classes are also OSError or TransportError.
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return UpstreamTimeout(
            f"upstream did not answer within {timeout_s:g}s ({_describe(exc)})"
        )
    if isinstance(exc, httpx.DecodingError):
        return UpstreamBadResponse(f"upstream reply could not be decoded ({_describe(exc)})")
    if isinstance(exc, httpx.TransportError | aiohttp.ClientError | OSError):
        return UpstreamConnectionError(f"upstream connection failed ({_describe(exc)})")
    return None


def transport_error(exc: BaseException, timeout_s: float) -> UpstreamError:
    """The broker error for an exception raised while sending; the only place they are mapped."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__
    for candidate in chain:
        if isinstance(candidate, _BAD_URL):
            return UpstreamError(f"upstream URL is not usable ({type(candidate).__name__})")
        if isinstance(candidate, _BAD_REQUEST):
            return UpstreamError(f"request could not be sent ({type(candidate).__name__})")
    if isinstance(exc, ValueError):
        return UpstreamError(f"request could not be sent ({type(exc).__name__})")
    # httpx-aiohttp re-raises aiohttp errors as httpx ones and maps some of them oddly
    # (a refused connection becomes ConnectTimeout), so the innermost known cause decides.
    for candidate in reversed(chain):
        error = _classify(candidate, timeout_s)
        if error is not None:
            return error
    return UpstreamConnectionError(f"upstream exchange failed ({type(exc).__name__})")


class HttpSender:
    """A pooled HTTP client for one event loop; it sends, times and maps errors, never retries."""

    __slots__ = ("_client", "_custom", "_loop", "_max_connections", "_session", "_timeouts",
                 "_transport")

    def __init__(self, transport: Transport = "aiohttp", max_connections: int = 100) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {transport!r}")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._transport: Transport = transport
        self._max_connections = max_connections
        self._custom: httpx.AsyncBaseTransport | None = None
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[float, httpx.Timeout] = {}
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def with_transport(cls, transport: httpx.AsyncBaseTransport) -> HttpSender:
        """A sender over a given httpx transport (httpx.MockTransport in tests)."""
        sender = cls("httpx")
        sender._custom = transport
        return sender

    @property
    def transport(self) -> Transport:
        """Which client stack sends the requests."""
        return self._transport

    def _new_client(self) -> httpx.AsyncClient:
        # Every connection may stay warm: the pool is sized to the worker's concurrency.
        limits = httpx.Limits(
            max_connections=self._max_connections,
            max_keepalive_connections=self._max_connections,
        )
        if self._custom is not None:
            return httpx.AsyncClient(transport=self._custom)
        if self._transport == "aiohttp":
            # The transport builds its aiohttp session and TCPConnector(limit=max_connections)
            # on first use, so they belong to the loop that sends.
            transport = httpx_aiohttp.AiohttpTransport(limits=limits)
            return httpx.AsyncClient(transport=transport)
        return httpx.AsyncClient(limits=limits)

    def _client_for_loop(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return self._client
        if self._client is not None:
            # Pooled connections are tied to the loop that opened them.
            raise RuntimeError("HttpSender is bound to another event loop; make one per loop")
        self._client = self._new_client()
        self._loop = loop
        return self._client

    def _timeout(self, timeout_s: float) -> httpx.Timeout:
        timeout = self._timeouts.get(timeout_s)
        if timeout is None:
            timeout = self._timeouts[timeout_s] = httpx.Timeout(timeout_s)
        return timeout

    def _session_for_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is loop:
            return self._session
        if self._session is not None:
            raise RuntimeError("HttpSender is bound to another event loop; make one per loop")
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        self._loop = loop
        return self._session

    @staticmethod
    def _total_timeout(timeout_s: float) -> aiohttp.ClientTimeout:
        # aiohttp rounds a timeout of ceil_threshold (5 s) or more up to the loop's next whole
        # second, so a 5 s timeout fired after 5.0-6.0 s; never rounding honours timeout_s.
        return aiohttp.ClientTimeout(total=timeout_s, ceil_threshold=math.inf)

    async def _send_direct(self, request: HttpRequest, timeout_s: float) -> HttpReply:
        session = self._session_for_loop()
        started = perf_counter()
        try:
            async with session.request(
                request.method, request.url, data=request.body, headers=request.headers,
                timeout=self._total_timeout(timeout_s),
            ) as response:
                content = await response.read()
                headers = {k.lower(): v for k, v in response.headers.items()}
                status = response.status
        except (*_TRANSPORT_ERRORS, TimeoutError) as exc:
            raise transport_error(exc, timeout_s) from None
        return HttpReply(status=status, headers=headers, content=content,
                         elapsed_ms=(perf_counter() - started) * 1000.0)

    async def send(self, request: HttpRequest, timeout_s: float) -> HttpReply:
        """Send one request and read the whole reply; transport failures raise UpstreamError."""
        if self._transport == "aiohttp-direct" and self._custom is None:
            return await self._send_direct(request, timeout_s)
        client = self._client_for_loop()
        started = perf_counter()
        try:
            # httpx's timeout bounds each phase; this one bounds the whole exchange, so a
            # server trickling bytes cannot hold a slot beyond timeout_s.
            async with asyncio.timeout(timeout_s):
                response = await client.request(
                    request.method,
                    request.url,
                    content=request.body,
                    headers=request.headers,
                    timeout=self._timeout(timeout_s),
                )
        except _TRANSPORT_ERRORS as exc:
            # No chaining: the cause holds the request, headers and key included.
            raise transport_error(exc, timeout_s) from None
        elapsed_ms = (perf_counter() - started) * 1000.0
        return HttpReply(
            status=response.status_code,
            headers=dict(response.headers.multi_items()),
            content=response.content,
            elapsed_ms=elapsed_ms,
        )

    async def aclose(self) -> None:
        """Close the pool; the next send opens a fresh one."""
        client, self._client, self._loop = self._client, None, None
        session, self._session = self._session, None
        if client is not None:
            await client.aclose()
        if session is not None:
            await session.close()
