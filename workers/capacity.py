"""Global capacity of each deployment, in Redis, shared by every worker on every host.

A call takes a lease (concurrency), one request (RPM) and a token estimate (TPM) in one
Lua script, and gives them back with the real usage in another; the same release feeds
the adaptive factor (multiplicative decrease on pressure, additive increase on success),
the latency EWMA and the circuit breaker. Leases expire, so a worker killed mid-call
frees its slot after the call timeout plus a margin, or sooner, once its heartbeat stops
(broker/liveness.py frees the leases of a dead process with its messages).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from broker import keys, liveness
from broker.catalog import CapacitySettings, Deployment, Tenant
from broker.lua_source import lua_source
from policies.routing import DeploymentState
from workers.script_batcher import ScriptBatcher

_ACQUIRE = lua_source("acquire.lua")
_RELEASE = lua_source("release.lua")


log = logging.getLogger("aibroker.capacity")

# A lease left for the next call goes back to the shared pool if no call takes it by then.
_UNCLAIMED_S = 0.02

# When the current batch must stop waiting for capacity (monotonic clock): a job that
# waited until then goes back to its queue instead of running into the task time limit.
WAIT_UNTIL: ContextVar[float] = ContextVar("aibroker_wait_until", default=float("inf"))


def _per_window(per_minute: int, window_s: int) -> int:
    return 0 if per_minute <= 0 else max(1, per_minute * window_s // 60)


class CapacityWaitExceeded(Exception):
    """A job waited longer than max_wait_s for capacity; it goes back to its queue."""


class DeadlinePassed(Exception):
    """The job's deadline passed while it waited for capacity."""


@dataclass(slots=True)
class Lease:
    """One call's hold on a deployment's capacity."""

    lease_id: str
    bucket: int
    reserved_tokens: int
    taken_at: float = 0.0  # monotonic time Redis granted it (reuse keeps the first grant's)


@dataclass(frozen=True, slots=True)
class Scope:
    """Something with limits: a deployment, a tenant, or a tenant's use of one model."""

    name: str
    concurrency: int
    rpm: int
    tpm: int
    lease_ttl_ms: int
    adaptive: bool = False  # deployments only: AIMD and the circuit breaker apply

    @property
    def state_key(self) -> str:
        """Hash of the scope's adaptive factor and health (deployments)."""
        kind, _, rest = self.name.partition(":")
        if kind == "dep":
            return keys.deployment_state(rest)
        return f"{keys.capacity_prefix(self.name)}state"

    @property
    def limited(self) -> bool:
        """False when the scope has no limit at all (nothing to take)."""
        return bool(self.concurrency or self.rpm or self.tpm)

    @property
    def concurrency_only(self) -> bool:
        """Only a concurrency limit: a held lease admits the next call as it stands."""
        return self.concurrency > 0 and not self.rpm and not self.tpm


def deployment_scope(deployment: Deployment, settings: CapacitySettings) -> Scope:
    """The capacity scope of one deployment."""
    capacity = deployment.capacity
    ttl = int((deployment.timeout_s + settings.lease_margin_s) * 1000)
    return Scope(f"dep:{deployment.name}", capacity.concurrency, capacity.rpm, capacity.tpm,
                 ttl, adaptive=True)


def tenant_scopes(tenant_name: str, tenant: Tenant, model: str, lease_ttl_ms: int) -> list[Scope]:
    """The tenant's own limits, and its limits on this model, that are set."""
    found = []
    limits = tenant.limits
    found.append(Scope(f"tenant:{tenant_name}", limits.concurrency, limits.rpm, limits.tpm,
                       lease_ttl_ms))
    per_model = tenant.model_limits.get(model)
    if per_model is not None:
        found.append(Scope(f"tm:{tenant_name}:{model}", per_model.concurrency, per_model.rpm,
                           per_model.tpm, lease_ttl_ms))
    return [scope for scope in found if scope.limited]


class CapacityStore:
    """The Redis side of capacity: deployments and tenants alike."""

    def __init__(self, client: aioredis.Redis, settings: CapacitySettings,
                 batcher: ScriptBatcher | None = None) -> None:
        self.client = client
        self.settings = settings
        self._acquire: Any = client.register_script(_ACQUIRE)
        self._release: Any = client.register_script(_RELEASE)
        self._batcher = batcher or ScriptBatcher(client)
        # Leases a finished call left for the next call of this process (see pass_on).
        self._passed: dict[str, list[Lease]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Lease ids name their process, so a dead process's leases free with its messages.
        self._owner = liveness.lease_owner_prefix()

    @staticmethod
    def _keys(scope: Scope) -> list[str]:
        return [keys.capacity_leases(scope.name), keys.capacity_ledger(scope.name),
                scope.state_key]

    async def try_acquire(self, scope: Scope, tokens: int) -> Lease | float:
        """A lease, or the milliseconds to wait before trying again."""
        passed = self._passed.get(scope.name)
        if passed:
            return passed.pop()
        window = self.settings.window_s
        lease_id = self._owner + uuid.uuid4().hex
        # Limits are per minute; a shorter window (tests) gets the proportional share.
        reply = await self._batcher.call(
            self._acquire, self._keys(scope),
            [keys.capacity_prefix(scope.name), int(time.time() * 1000), lease_id,
             scope.lease_ttl_ms, scope.concurrency, _per_window(scope.rpm, window),
             _per_window(scope.tpm, window), tokens, window])
        if int(reply[0]) == 1:
            return Lease(lease_id, int(reply[1]), int(reply[2]) if scope.tpm else 0,
                         time.monotonic())
        return float(reply[2])

    async def acquire(self, scope: Scope, tokens: int, deadline: float | None,
                      wait: bool = True) -> Lease:
        """Wait for capacity; raises DeadlinePassed or CapacityWaitExceeded."""
        waited_until = min(time.monotonic() + (self.settings.max_wait_s if wait else 0.0),
                           WAIT_UNTIL.get())
        while True:
            got = await self.try_acquire(scope, tokens)
            if isinstance(got, Lease):
                return got
            if deadline is not None and time.time() >= deadline:
                raise DeadlinePassed
            if time.monotonic() >= waited_until:
                raise CapacityWaitExceeded
            await asyncio.sleep(min(got, 1000.0) / 1000.0)

    def can_pass_on(self, scope: Scope, lease: Lease) -> bool:
        """Whether a lease may go straight to this process's next call on the scope."""
        reuse = self.settings.lease_reuse_s
        return (scope.concurrency_only and reuse > 0
                and time.monotonic() - lease.taken_at < reuse)

    def pass_on(self, scope: Scope, lease: Lease, outcome: str, latency_ms: float,
                ) -> asyncio.Task[str]:
        """Leave the lease for the next call here and settle its outcome in the background.

        The next waiter then starts without a round trip to Redis; the lease's expiry moves
        on so a worker dying later still frees it. A lease nobody takes promptly goes back
        to the shared pool.
        """
        self._passed.setdefault(scope.name, []).append(lease)
        asyncio.get_running_loop().call_later(_UNCLAIMED_S, self._reclaim, scope, lease)
        return self._spawn(self.release(scope, lease, outcome, 0, latency_ms, keep=True))

    def release_soon(self, scope: Scope, lease: Lease, outcome: str, actual_tokens: int,
                     latency_ms: float) -> asyncio.Task[str]:
        """`release`, queued now and awaited later (it joins the next script pipeline)."""
        return self._spawn(self.release(scope, lease, outcome, actual_tokens, latency_ms))

    def _reclaim(self, scope: Scope, lease: Lease) -> None:
        passed = self._passed.get(scope.name, [])
        if lease in passed:
            passed.remove(lease)
            self._spawn(self.release(scope, lease, "none", 0, 0.0))

    def _spawn(self, coro: Coroutine[Any, Any, str]) -> asyncio.Task[str]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._settled)
        return task

    def _settled(self, task: asyncio.Task[str]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Redis unreachable: the lease expires on its own after its ttl.
            log.warning("could not settle a lease: %s", task.exception())

    async def release(self, scope: Scope, lease: Lease, outcome: str, actual_tokens: int,
                      latency_ms: float, keep: bool = False) -> str:
        """Give the lease back and settle; returns the circuit state after this outcome."""
        adaptive = self.settings.adaptive
        tpm_on = scope.tpm > 0
        state = await self._batcher.call(
            self._release, self._keys(scope),
            [keys.capacity_prefix(scope.name), lease.lease_id, lease.bucket,
                  lease.reserved_tokens, actual_tokens if tpm_on else 0,
                  outcome if scope.adaptive else "none", int(time.time() * 1000),
                  round(latency_ms, 3), adaptive.increase_step, adaptive.decrease_factor,
                  adaptive.min_factor, int(adaptive.decrease_interval_s * 1000),
                  self.settings.health.failure_threshold, 1 if tpm_on else 0,
                  scope.lease_ttl_ms if keep else 0])
        return str(state)

    async def snapshot(self, deployments: list[Deployment]) -> dict[str, DeploymentState]:
        """Current state of several deployments in one round trip."""
        now_ms = int(time.time() * 1000)
        sec = now_ms // 1000
        window = self.settings.window_s
        async with self.client.pipeline(transaction=False) as pipe:
            for deployment in deployments:
                leases, _ledger, state = self._keys(deployment_scope(deployment, self.settings))
                prefix = keys.capacity_prefix(f"dep:{deployment.name}")
                pipe.hgetall(state)
                pipe.zcount(leases, now_ms, "+inf")
                pipe.mget([f"{prefix}r:{s}" for s in range(sec - window + 1, sec + 1)])
                pipe.mget([f"{prefix}t:{s}" for s in range(sec - window + 1, sec + 1)])
            replies = await pipe.execute()
        states: dict[str, DeploymentState] = {}
        for index, deployment in enumerate(deployments):
            raw, in_flight, requests, tokens = replies[4 * index:4 * index + 4]
            states[deployment.name] = DeploymentState(
                name=deployment.name, factor=float(raw.get("factor", 1.0)),
                ewma_ms=float(raw["ewma_ms"]) if "ewma_ms" in raw else None,
                state=raw.get("state", "closed"), opened_at_ms=float(raw.get("opened_at", 0)),
                in_flight=int(in_flight),
                requests_in_window=sum(int(v) for v in requests if v),
                tokens_in_window=sum(int(v) for v in tokens if v))
        return states

    async def try_probe(self, deployment: str, cooldown_s: float) -> bool:
        """Claim the single probe of a half-open deployment."""
        claimed = await self.client.set(keys.probe_lock(deployment), "1", nx=True,
                                        px=int(cooldown_s * 1000))
        return bool(claimed)
