"""The simulated provider: an aiohttp app speaking four providers' APIs, plus /_sim routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
from aiohttp import web

from broker.simulator import anthropic_format, azure_format, gemini_format, openai_format
from broker.simulator.behaviour import Behaviour, Outcome, parse_outcome
from broker.simulator.openai_format import Call, Endpoint, ErrorKind, InvalidRequestError
from broker.simulator.settings import SimSettings, describe_errors
from broker.simulator.stats import LogEntry, RateWindow, Stats
from broker.tokens import get_encoding

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]
_COMPACT = (",", ":")
_FAILURES: dict[Outcome, ErrorKind] = {
    Outcome.RATE_LIMIT: "rate_limit",
    Outcome.SERVER_ERROR: "server_error",
    Outcome.UNAVAILABLE: "unavailable",
    Outcome.TIMEOUT: "timeout",
}
_FIXED_KNOBS = ("host", "port")  # the listening socket cannot move while it serves
_WARM_ENCODINGS = ("o200k_base", "cl100k_base")
CLIENT_CLOSED = 499  # nginx's code for "the client hung up before the reply"


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=_COMPACT).encode("utf-8")


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(payload), status=status, content_type="application/json")


def _control_error(status: int, message: str) -> web.Response:
    return _json(openai_format.error_body(message, "invalid_request_error"), status)


def _loggable_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _log_unparsed(entry: LogEntry, raw: bytes, outcome: str) -> None:
    """Fill a log entry for a request turned away before validation."""
    entry.body, entry.outcome = _loggable_body(raw), outcome
    model = entry.body.get("model") if isinstance(entry.body, dict) else None
    entry.model = model if isinstance(model, str) and model else None


class Simulator:
    """State shared by every request: settings, dice, counters."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.behaviour = Behaviour(settings)
        self.stats = Stats(settings.request_log_size)
        self.window = RateWindow()
        self.closing = asyncio.Event()  # set on stop, so held `timeout` requests let go
        self.started = time.monotonic()

    def build_app(self) -> web.Application:
        """The aiohttp application with every route mounted."""
        app = web.Application(client_max_size=32 * 1024 * 1024)
        for endpoint in (*openai_format.ENDPOINTS, *anthropic_format.ENDPOINTS):
            app.router.add_post(endpoint.path, self._inference_handler(endpoint))
        for path, bind in (*azure_format.PATH_ENDPOINTS, *gemini_format.PATH_ENDPOINTS):
            app.router.add_post(path, self._bound_handler(bind))
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/_sim/health", self.health)
        app.router.add_get("/_sim/stats", self.get_stats)
        app.router.add_get("/_sim/requests", self.get_requests)
        app.router.add_post("/_sim/reset", self.reset)
        app.router.add_get("/_sim/config", self.get_config)
        app.router.add_patch("/_sim/config", self.patch_config)
        app.router.add_post("/_sim/script", self.post_script)
        # Last, so it only catches what nothing else matched; OpenAI answers those with 404 JSON.
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    def apply(self, settings: SimSettings) -> None:
        """Switch to new settings without dropping requests in flight."""
        self.behaviour.configure(settings)
        self.stats.resize_log(settings.request_log_size)
        self.settings = settings

    def _inference_handler(self, endpoint: Endpoint) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.inference(request, endpoint)

        return handle

    def _bound_handler(self, bind: Callable[[Mapping[str, str]], Endpoint]) -> Handler:
        # The endpoint needs the path (a model or deployment name) and query to parse a request.
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.inference(request, bind({**request.query, **request.match_info}))

        return handle

    def _auth_problem(self, request: web.Request, endpoint: Endpoint) -> str | None:
        if not self.settings.require_api_key:
            return None
        return endpoint.check_key(request.headers, self.settings.api_key)

    async def inference(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        """One chat/embeddings request: gate, auth, validate, outcome, latency, reply."""
        started = time.perf_counter()
        entry = LogEntry(time.time(), request.path, f"req_{uuid.uuid4().hex}")
        self.window.add(1, 0)
        raw = await request.read()
        if not self.behaviour.gate.try_enter():
            # A capacity limit sheds load at the door: no latency, no work.
            _log_unparsed(entry, raw, "capacity")
            status, body = endpoint.error("capacity", None, None)
            return await self._send(request, entry, status, _dumps(body), started)
        self.stats.enter()
        try:
            return await self._admitted(request, endpoint, entry, raw, started)
        except asyncio.CancelledError:
            entry.status, entry.outcome = CLIENT_CLOSED, entry.outcome or "cancelled"
            entry.latency_ms = (time.perf_counter() - started) * 1000
            abandoned = self.settings.bill_abandoned and entry.outcome == Outcome.OK.value
            self.stats.record(entry, served=abandoned)
            raise
        finally:
            self.behaviour.gate.leave()
            self.stats.leave()

    async def _admitted(
        self, request: web.Request, endpoint: Endpoint, entry: LogEntry, raw: bytes, started: float
    ) -> web.StreamResponse:
        call: Call | None = None
        auth_problem = self._auth_problem(request, endpoint)
        if auth_problem is not None:
            _log_unparsed(entry, raw, "unauthorized")
            status, body = endpoint.error("invalid_api_key", auth_problem, None)
        else:
            try:
                call = endpoint.parse(raw)
            except InvalidRequestError as exc:
                _log_unparsed(entry, raw, "invalid")
                status, body = endpoint.error("invalid_request", exc.message, exc.param)
        if call is None:
            await self._sleep(self.behaviour.latency_s())
            return await self._send(request, entry, status, _dumps(body), started)

        entry.model, entry.prompt_tokens = call.model, call.prompt_tokens
        entry.text, entry.body = call.text, call.body
        outcome = self.behaviour.next_outcome()
        entry.outcome = outcome.value
        if outcome is Outcome.TIMEOUT:
            # Held past any client timeout; released early only when the server stops.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.behaviour.timeout_hold_s)
        else:
            if outcome is Outcome.OK and self.settings.bill_abandoned:
                # What the reply will carry, known before the wait a hung-up client cuts short.
                configured = self.settings.completion_tokens
                entry.completion_tokens = endpoint.respond(call, configured)[1]
            await self._sleep(self.behaviour.latency_s())
        if outcome in _FAILURES:
            status, body = endpoint.error(_FAILURES[outcome], None, None)
            return await self._send(request, entry, status, _dumps(body), started)
        body, completion_tokens = endpoint.respond(call, self.settings.completion_tokens)
        if outcome is Outcome.MALFORMED:
            return await self._send(request, entry, 200, openai_format.truncated(body), started)
        entry.completion_tokens = completion_tokens
        return await self._send(request, entry, 200, _dumps(body), started, served=True)

    @staticmethod
    async def _sleep(seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def _send(
        self, request: web.Request, entry: LogEntry, status: int, payload: bytes,
        started: float, *, served: bool = False,
    ) -> web.StreamResponse:
        elapsed_ms = (time.perf_counter() - started) * 1000
        settings = self.settings
        headers = {
            "x-request-id": entry.request_id,
            "openai-processing-ms": str(int(elapsed_ms)),
            "openai-version": "2020-10-01",
        }
        if served:
            self.window.add(0, entry.prompt_tokens + entry.completion_tokens)
        if settings.rpm_limit or settings.tpm_limit:
            headers.update(self.window.headers(settings.rpm_limit, settings.tpm_limit))
        if status == 429:
            headers["retry-after"] = str(math.ceil(settings.retry_after_s))
            headers["retry-after-ms"] = str(int(settings.retry_after_s * 1000))
        response = web.Response(
            body=payload, status=status, headers=headers, content_type="application/json"
        )
        entry.status, entry.latency_ms = status, elapsed_ms
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:
            # The client left before the reply went out: nothing was served.
            entry.status, served = CLIENT_CLOSED, served and self.settings.bill_abandoned
        self.stats.record(entry, served=served)
        return response

    async def models(self, request: web.Request) -> web.Response:
        """GET /v1/models: a fixed catalogue plus every model seen so far."""
        auth_problem = self._auth_problem(request, openai_format.CHAT)
        if auth_problem is not None:
            status, body = openai_format.error("invalid_api_key", auth_problem)
            return _json(body, status)
        names = dict.fromkeys([*openai_format.MODELS, *self.stats.by_model])
        return _json(openai_format.models_list(list(names)))

    async def not_found(self, request: web.Request) -> web.Response:
        """Any unknown route."""
        return _control_error(404, f"Invalid URL ({request.method} {request.path})")

    async def health(self, _request: web.Request) -> web.Response:
        """GET /_sim/health."""
        uptime = round(time.monotonic() - self.started, 3)
        return _json({"status": "ok", "uptime_s": uptime, "in_flight": self.stats.in_flight})

    async def get_stats(self, _request: web.Request) -> web.Response:
        """GET /_sim/stats."""
        return _json({**self.stats.snapshot(), "script_remaining": len(self.behaviour.script)})

    async def get_requests(self, request: web.Request) -> web.Response:
        """GET /_sim/requests?limit=N: the newest N logged requests, oldest first."""
        limit = request.query.get("limit")
        if limit is not None and not limit.isdigit():
            return _control_error(400, "limit must be a non-negative integer")
        entries = self.stats.recent(None if limit is None else int(limit))
        return _json({"count": len(entries), "requests": entries})

    async def reset(self, _request: web.Request) -> web.Response:
        """POST /_sim/reset: zero counters and log, drop the script, replay the dice."""
        self.stats.reset()
        self.window.reset()
        self.behaviour.load_script(())
        self.behaviour.reseed()
        return _json({"status": "reset"})

    async def get_config(self, _request: web.Request) -> web.Response:
        """GET /_sim/config."""
        return _json({"config": self.settings.model_dump()})

    async def patch_config(self, request: web.Request) -> web.Response:
        """PATCH /_sim/config: change knobs at run time, validated by SimSettings."""
        patch = _loggable_body(await request.read())
        if not isinstance(patch, dict):
            return _control_error(400, "the body must be a JSON object")
        current = self.settings.model_dump()
        moved = [knob for knob in _FIXED_KNOBS if knob in patch and patch[knob] != current[knob]]
        if moved:
            return _control_error(400, f"cannot change {', '.join(moved)} while running")
        try:
            settings = SimSettings.model_validate({**current, **patch})
        except pydantic.ValidationError as exc:
            return _control_error(400, f"invalid config: {describe_errors(exc)}")
        self.apply(settings)
        return _json({"config": settings.model_dump()})

    async def post_script(self, request: web.Request) -> web.Response:
        """POST /_sim/script: `[..]` or `{"outcomes": [..], "append": bool}`."""
        payload = _loggable_body(await request.read())
        append = isinstance(payload, dict) and bool(payload.get("append", False))
        outcomes = payload.get("outcomes") if isinstance(payload, dict) else payload
        if not isinstance(outcomes, list):
            return _control_error(400, "expected a JSON list of outcomes")
        try:
            parsed = [parse_outcome(item) for item in outcomes]
        except ValueError as exc:
            return _control_error(400, str(exc))
        remaining = self.behaviour.load_script(parsed, append=append)
        script = [outcome.value for outcome in self.behaviour.script]
        return _json({"script_remaining": remaining, "script": script})


@dataclass
class RunningSimulator:
    """A simulator serving in the current event loop."""

    host: str
    port: int
    simulator: Simulator
    runner: web.AppRunner

    @property
    def url(self) -> str:
        """Base URL such as `http://127.0.0.1:8123` (append `/v1` for OpenAI clients)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Release held requests and close the listening socket and connections."""
        self.simulator.closing.set()
        await self.runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


async def start(settings: SimSettings) -> RunningSimulator:
    """Start serving in the running event loop; port 0 picks a free port."""
    # Load the common encodings up front so the first request is not 0.5 s slower than the rest.
    await asyncio.gather(*(asyncio.to_thread(get_encoding, name) for name in _WARM_ENCODINGS))
    simulator = Simulator(settings)
    runner = web.AppRunner(
        simulator.build_app(),
        access_log=None,  # per-request logging would dominate the CPU the benchmarks measure
        handler_cancellation=True,  # a client that gives up frees its concurrency slot
        shutdown_timeout=2.0,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = int(runner.addresses[0][1])
    return RunningSimulator(settings.host, port, simulator, runner)


async def _serve_until_signalled(settings: SimSettings) -> None:
    running = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(signum, stop.set)
    print(f"aibroker upstream listening on {running.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.stop()


def run(settings: SimSettings) -> None:
    """Serve until SIGINT/SIGTERM, on uvloop when it is installed."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if sys.platform != "win32":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve_until_signalled(settings))
