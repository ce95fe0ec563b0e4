"""Per-process worker state: the catalog, one asyncio loop, Redis and HTTP clients.

Celery runs task bodies in pool threads; every stage's I/O runs on one event loop in a
background thread, so a model worker keeps many upstream calls in flight per process.
The catalog is read once per process, never per job.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from broker import keys
from broker.backend import ResultBackend
from broker.catalog import Catalog, Deployment, EnvOverrides, load_catalog
from broker.errors import BrokerError
from broker.jobstore import JobRecord
from broker.queues import declare_model_queues
from policies.limits.gate import PriorityGate
from policies.pipeline import PolicyPipeline
from policies.routing import DeploymentState, RoutingStrategy, States, get_strategy
from workers.attempts import OpenAttempts
from workers.budgets import BudgetStore
from workers.capacity import CapacityStore, Scope, deployment_scope, tenant_scopes
from workers.http import HttpSender
from workers.providers.base import get_adapter
from workers.script_batcher import ScriptBatcher
from workers.shared_view import SharedView

T = TypeVar("T")
log = logging.getLogger("aibroker.runtime")
# httpx logs every request at INFO: too much for a worker making thousands of calls.
logging.getLogger("httpx").setLevel(logging.WARNING)


# Probe an idle connection after 10 s, then every 5 s; drop it after 3 missed answers.
_KEEPALIVE = {option: value for name, value in
              (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
              if (option := getattr(socket, name, None)) is not None}


# Cancellations are stamped by producers' clocks; each read looks this far behind the
# newest one it has seen, so a producer a little behind is not missed.
_CANCEL_CLOCK_MARGIN_S = 30.0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on some platforms
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class Runtime:
    """Everything a stage needs, built once per worker process."""

    def __init__(self, catalog: Catalog, source: Path | None = None) -> None:
        self.settings = catalog.broker
        self.backend = ResultBackend(catalog.broker)
        self.source = source
        self._stamp = _stamp(source)
        self._checked = time.monotonic()
        self.catalog_version = _version(source)
        self._apply(catalog)
        self.rng = random.Random()
        total_capacity = sum(d.capacity.concurrency for d in catalog.deployments.values())
        self.sender = HttpSender(
            transport=catalog.broker.http_transport, max_connections=max(total_capacity, 16)
        )
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aibroker-loop",
                                        daemon=True)
        self._thread.start()
        self.redis: aioredis.Redis = self.call(self._connect())
        # One coalescer for every per-job script (capacity, results): the calls of all jobs
        # in flight go out as one pipeline per loop turn.
        self.scripts = ScriptBatcher(self.redis)
        self.capacity = CapacityStore(self.redis, catalog.broker.capacity, self.scripts)
        self.budgets = BudgetStore(self.redis)
        self.attempts = OpenAttempts(self.redis, self.scripts, catalog.broker)
        self._gates: dict[str, PriorityGate] = {}
        self._states = SharedView[States](self._read_states, {}, "deployment states")
        self._cancelled = SharedView(self._read_cancelled, frozenset[str](), "cancellations")
        self._cancel_seen: dict[str, float] = {}  # cancelled id -> when it was announced
        self._cancel_newest = 0.0

    async def _connect(self) -> aioredis.Redis:
        # A blocking pool: at thousands of jobs in flight, waiting a moment for a
        # connection beats the default pool's MaxConnectionsError.
        # No per-command socket timeout: redis-py wraps every read in a timeout context
        # and every send in wait_for, ~11% of a busy model worker's CPU (py-spy). A Redis
        # that dies closes the socket; a peer that vanishes from the network is found by
        # TCP keepalive within ~25 s; a batch stuck anyway ends at the task time limit.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.settings.redis_url, decode_responses=True, max_connections=256, timeout=30,
            health_check_interval=30, socket_timeout=None, socket_connect_timeout=5,
            socket_keepalive=True, socket_keepalive_options=_KEEPALIVE)
        return aioredis.Redis(connection_pool=pool)

    def _apply(self, catalog: Catalog) -> None:
        """Build everything derived from the catalog (at start-up and on reload)."""
        strategies: dict[str, RoutingStrategy] = {
            name: get_strategy(spec.strategy) for name, spec in catalog.models.items()
        }
        # Fail at start-up, not on the first job, when a deployment names no known adapter.
        for deployment in catalog.deployments.values():
            get_adapter(deployment.provider)
        self.policy = PolicyPipeline(catalog)
        self.strategies = strategies
        self._scope_cache: dict[tuple[str, ...], list[Scope]] = {}
        self.catalog = catalog

    async def maybe_reload(self) -> bool:
        """Pick up a changed catalog file; connections and pools stay as they are."""
        interval = self.settings.catalog_reload_s
        now = time.monotonic()
        if self.source is None or not interval or now - self._checked < interval:
            return False
        self._checked = now
        stamp = _stamp(self.source)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            catalog = load_catalog(self.source)
            # Queues first: other threads route by the new catalog as soon as it applies.
            _declare_queues(catalog)
            self._apply(catalog)
        except (BrokerError, KeyError) as exc:
            log.error("catalog change not applied, keeping version %s: %s",
                      self.catalog_version, exc)
            return False
        self.catalog_version = _version(self.source)
        log.info("catalog reloaded: policy version %s", self.catalog_version)
        return True

    def deployment_scope(self, deployment: Deployment) -> Scope:
        """The capacity scope of a deployment."""
        return self._scopes(("dep", deployment.name),
                            lambda: [deployment_scope(deployment, self.settings.capacity)])[0]

    def tenant_scopes(self, record: JobRecord, deployment: Deployment) -> list[Scope]:
        """The tenant's limits that apply to a job (none when it has none)."""
        tenant_name, model = record.tenant or "", record.body.model

        def build() -> list[Scope]:
            tenant = self.catalog.tenants.get(tenant_name)
            if tenant is None:
                return []
            # A tenant lease is also held while the job waits for the deployment's capacity.
            capacity = self.settings.capacity
            ttl_ms = int((capacity.max_wait_s + deployment.timeout_s + capacity.lease_margin_s)
                         * 1000)
            return tenant_scopes(tenant_name, tenant, model, ttl_ms)

        return self._scopes((tenant_name, model, deployment.name), build)

    def _scopes(self, key: tuple[str, ...], build: Callable[[], list[Scope]]) -> list[Scope]:
        # Asked for on every attempt; the answer changes only with the catalog.
        found = self._scope_cache.get(key)
        if found is None:
            found = self._scope_cache[key] = build()
        return found

    def on_limit(self, record: JobRecord) -> str:
        """What the job's tenant wants done when its own limit is reached."""
        tenant = self.catalog.tenants.get(record.tenant or "")
        return tenant.on_limit if tenant else "queue"

    def gate(self, deployment: str) -> PriorityGate:
        """The in-process cap on calls to one deployment, interactive lane first."""
        gate = self._gates.get(deployment)
        if gate is None:
            gate = PriorityGate(self.catalog.deployments[deployment].capacity.concurrency)
            self._gates[deployment] = gate
        return gate

    def cached_deployment_state(self, name: str) -> DeploymentState | None:
        """A deployment's shared state as last read (no Redis call)."""
        return self._states.value.get(name)

    async def deployment_states(self) -> States:
        """Every deployment's shared state, re-read at most every half second."""
        return await self._states.get()

    async def cancelled(self) -> frozenset[str]:
        """Job ids and `batch:<id>` entries cancelled lately (see broker.cancellations)."""
        return await self._cancelled.get()

    async def _read_states(self) -> States:
        return await self.capacity.snapshot(list(self.catalog.deployments.values()))

    async def _read_cancelled(self) -> frozenset[str]:
        # Only what was added since the last read (less a margin for producers' clocks),
        # not the whole set: a mass cancel of single jobs would be re-read every turn.
        since = self._cancel_newest - _CANCEL_CLOCK_MARGIN_S if self._cancel_seen else "-inf"
        fresh = await self.redis.zrangebyscore(keys.cancellations(), since, "+inf",
                                               withscores=True)
        added = [(str(member), float(score))
                 for member, score in cast(list[tuple[str, float]], fresh)
                 if str(member) not in self._cancel_seen]
        if not added:
            return self._cancelled.value
        self._cancel_seen.update(added)
        self._cancel_newest = max([self._cancel_newest, *(score for _, score in added)])
        oldest = self._cancel_newest - self.settings.model_task_time_limit_s
        self._cancel_seen = {m: t for m, t in self._cancel_seen.items() if t >= oldest}
        return frozenset(self._cancel_seen)

    def reconnect(self) -> None:
        """Drop every pooled Redis connection; the next commands open fresh ones."""
        try:
            self.call(self.redis.connection_pool.disconnect(), timeout=10)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not reset Redis connections: %s", exc)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the worker loop and wait for its result from a pool thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        """Close clients and stop the loop."""
        async def _close() -> None:
            await self.sender.aclose()
            await self.redis.aclose()

        try:
            self.call(_close(), timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


def _declare_queues(catalog: Catalog) -> None:
    """Give new deployments their queues, so jobs routed to them wait there for a worker."""
    from broker.app import app  # the worker's own app; imported late: it loads the catalog

    added = declare_model_queues(app, catalog.deployments)
    if added:
        log.info("queues declared for new deployments: %s", ", ".join(added))


def _stamp(source: Path | None) -> tuple[int, int] | None:
    if source is None:
        return None
    try:
        stat = source.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _version(source: Path | None) -> str:
    """A short hash of the catalog file: the policy version recorded in results."""
    if source is None:
        return "-"
    try:
        return hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    except OSError:
        return "-"


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, created on first use from the catalog (AIBROKER_CONFIG)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                source = Path(EnvOverrides().config)
                catalog = load_catalog(source)
                # The app was built when the process started; the file may be newer.
                _declare_queues(catalog)
                _runtime = Runtime(catalog, source)
    return _runtime
