"""Each routing strategy sends traffic where it should (fixed seeds, statistical checks)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from broker.catalog import EnvOverrides, parse_catalog
from policies.routing import DeploymentState, get_strategy
from policies.routing.most_headroom import headroom

CATALOG = parse_catalog({"models": {"m": {"deployments": [
    {"name": "fast-pricey", "base_url": "http://a/v1", "model": "gpt-4o", "weight": 1,
     "capacity": {"concurrency": 10, "rpm": 1000}, "price": {"input_per_1m": 5,
                                                             "output_per_1m": 15}},
    {"name": "slow-cheap", "base_url": "http://b/v1", "model": "gpt-4o", "weight": 2,
     "capacity": {"concurrency": 40, "rpm": 1000}, "price": {"input_per_1m": 0.5,
                                                             "output_per_1m": 1.5}},
    {"name": "mid", "base_url": "http://c/v1", "model": "gpt-4o", "weight": 1,
     "capacity": {"concurrency": 20, "rpm": 100}, "price": {"input_per_1m": 2,
                                                            "output_per_1m": 6}},
]}}}, Path("c.yaml"), EnvOverrides())
DEPLOYMENTS = CATALOG.models["m"].deployments
STATES = {
    "fast-pricey": DeploymentState("fast-pricey", ewma_ms=120, in_flight=8,
                                   requests_in_window=100),
    "slow-cheap": DeploymentState("slow-cheap", ewma_ms=900, in_flight=10,
                                  requests_in_window=500),
    "mid": DeploymentState("mid", ewma_ms=400, in_flight=2, requests_in_window=90),
}


def _picks(strategy: str, n: int = 4000, seed: int = 7) -> Counter[str]:
    chooser = get_strategy(strategy)
    rng = random.Random(seed)
    return Counter(chooser.choose(DEPLOYMENTS, 500, rng, STATES).name for _ in range(n))


def test_weighted_splits_by_weight() -> None:
    picks = _picks("weighted")
    assert 0.47 < picks["slow-cheap"] / 4000 < 0.53
    assert 0.22 < picks["fast-pricey"] / 4000 < 0.28


def test_least_busy_prefers_lowest_share_in_flight() -> None:
    assert _picks("least-busy") == {"mid": 4000}  # 2/20 < 10/40 < 8/10


def test_lowest_latency_prefers_fastest_with_a_little_exploration() -> None:
    picks = _picks("lowest-latency")
    assert picks["fast-pricey"] / 4000 > 0.95
    assert picks["slow-cheap"] > 0  # exploration keeps its average current


def test_lowest_latency_tries_unmeasured_deployments_first() -> None:
    fresh = {**STATES, "mid": DeploymentState("mid")}
    rng = random.Random(1)
    chooser = get_strategy("lowest-latency")
    picks = Counter(chooser.choose(DEPLOYMENTS, 10, rng, fresh).name for _ in range(1000))
    assert picks.most_common(1)[0][0] == "mid"


def test_lowest_cost_prefers_cheapest_price() -> None:
    assert _picks("lowest-cost") == {"slow-cheap": 4000}


def test_most_headroom_prefers_most_remaining_capacity() -> None:
    assert headroom(DEPLOYMENTS[2], STATES["mid"]) < 0.15  # 90 of 100 rpm used
    assert _picks("most-headroom") == {"slow-cheap": 4000}  # min(1-10/40, 1-500/1000) = .5


def test_ties_spread_load() -> None:
    idle = {name: DeploymentState(name) for name in STATES}
    chooser = get_strategy("least-busy")
    rng = random.Random(3)
    picks = Counter(chooser.choose(DEPLOYMENTS, 1, rng, idle).name for _ in range(3000))
    assert min(picks.values()) > 800
