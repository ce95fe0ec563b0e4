"""Budgets: reserved at admission with an estimate, settled with real usage once per job.

The bound: a reservation succeeds only while used + reserved + estimate stays within the
cap, so the tokens and cost charged exceed a cap by at most what the jobs already in
flight use beyond their estimates — nothing at all when jobs set max_tokens (their
estimate is an upper bound), otherwise at most (completion - default_max_tokens) each.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from broker import keys
from broker.catalog import Budget, Catalog, Tenant
from broker.errors import BudgetExceeded
from broker.lua_source import lua_source
from broker.schemas import JobBody

_RESERVE = lua_source("budget_reserve.lua")
_SETTLE = lua_source("budget_settle.lua")
_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a job holds against its budgets until it ends."""

    keys: list[str]
    tokens: int
    nanousd: int

    def to_json(self) -> str:
        """Stored in the job hash."""
        return json.dumps({"keys": self.keys, "tokens": self.tokens, "nanousd": self.nanousd})

    @classmethod
    def from_json(cls, raw: str) -> Reservation:
        """Read back from the job hash."""
        data = json.loads(raw)
        return cls(list(data["keys"]), int(data["tokens"]), int(data["nanousd"]))


def _periods(now: float) -> tuple[str, str]:
    stamp = time.strftime("%Y%m%d", time.gmtime(now))
    return stamp, stamp[:6]


def applicable(tenant_name: str, tenant: Tenant, model: str,
               now: float) -> list[tuple[str, int, int, float]]:
    """(key, token cap, nano-USD cap, soft share) for every budget that caps this job."""
    day, month = _periods(now)
    found = []
    scopes: list[tuple[str, Budget]] = [(f"t:{tenant_name}", tenant.budget)]
    if model in tenant.model_budgets:
        scopes.append((f"tm:{tenant_name}:{model}", tenant.model_budgets[model]))
    for scope, budget in scopes:
        usd = round(budget.usd_per_month * 1e9)
        if budget.tokens_per_day:
            found.append((keys.budget(scope, day), budget.tokens_per_day, 0,
                          budget.soft_threshold))
        if budget.tokens_per_month or usd:
            found.append((keys.budget(scope, month), budget.tokens_per_month, usd,
                          budget.soft_threshold))
    return found


def estimate(catalog: Catalog, body: JobBody, input_tokens: int,
             default_max_tokens: int) -> tuple[int, int]:
    """Tokens and nano-USD a job may use at most (the dearest deployment of its model)."""
    output = 0 if body.kind == "embeddings" else (body.output_cap or default_max_tokens)
    prices = [d.price for d in catalog.models[body.model].deployments]
    return input_tokens + output, max(p.cost_nanousd(input_tokens, output) for p in prices)


class BudgetStore:
    """Budget reservations and settlements in Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._reserve: Any = client.register_script(_RESERVE)
        self._settle: Any = client.register_script(_SETTLE)

    async def reserve(self, job_id: str, caps: list[tuple[str, int, int, float]], tokens: int,
                      nanousd: int) -> tuple[Reservation | BudgetExceeded, list[str]]:
        """A reservation (and the budgets that just crossed their soft threshold).

        Once per job: asked again for the same job, it answers with the same reservation
        and holds nothing more.
        """
        args: list[Any] = [tokens, nanousd, 40 * _DAY_S]
        for _, token_cap, usd_cap, soft in caps:
            args += [token_cap, usd_cap, soft]
        reply = await self._reserve(
            keys=[keys.budget_reserved(job_id), *(key for key, *_ in caps)], args=args)
        if int(reply[0]) == 0:
            key = caps[int(reply[1]) - 1][0]
            what = "tokens" if reply[2] == "tokens" else "USD"
            return BudgetExceeded(f"the {what} budget {key.split(':', 2)[-1]} is used up"), []
        warned = [caps[int(i) - 1][0] for i in reply[1:]]
        return Reservation([key for key, *_ in caps], tokens, nanousd), warned

    async def settle(self, job_id: str, reservation: Reservation, tokens: int,
                     nanousd: int) -> bool:
        """Replace the reservation by real usage; False if it was settled before."""
        settled = await self._settle(
            keys=[keys.budget_settled(job_id), *reservation.keys],
            args=[reservation.tokens, reservation.nanousd, tokens, nanousd, 40 * _DAY_S])
        return bool(settled)
