"""Sizes of every scenario (full and quick), the bench tenant, catalog and workload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.catalog import hash_key

TENANT = "bench"
TENANT_KEY = "sk-bench-0123456789abcdef0123"
MODEL = "bench-chat"
UPSTREAM_MODEL = "gpt-4o-mini"
DEPLOYMENT = "bench"
LATENCY_MS = 50.0
CAPACITY = 256
MAX_TOKENS = 16


@dataclass(frozen=True, slots=True)
class Sizes:
    """Job counts and time bounds; `quick` shrinks them for the smoke run."""

    quick: bool
    throughput_jobs: int
    queued_probe_jobs: int
    warmup_jobs: int
    transport_jobs: int
    naive_jobs: int
    ceiling_jobs: int
    ceiling_httpx_jobs: int
    latency_jobs: int
    latency_rate: float
    scaling_jobs: int
    capacity_jobs: int
    rpm_jobs: int
    rpm: int
    rpm_window_s: int
    memory_rounds: int
    memory_round_jobs: int
    stall_s: float
    run_budget_s: float
    point_budget_s: float
    memory_budget_s: float
    batch_lines: int

    @classmethod
    def full(cls) -> Sizes:
        """The sizes issue 7 asks for."""
        return cls(quick=False, throughput_jobs=10_000, queued_probe_jobs=2_000, warmup_jobs=500,
                   transport_jobs=2_000, naive_jobs=5_000, ceiling_jobs=10_000,
                   ceiling_httpx_jobs=1_500, latency_jobs=1_000, latency_rate=10.0,
                   scaling_jobs=4_000, capacity_jobs=5_000, rpm_jobs=6_000, rpm=6_000,
                   rpm_window_s=20, memory_rounds=5, memory_round_jobs=10_000, stall_s=30.0,
                   run_budget_s=180.0, point_budget_s=60.0, memory_budget_s=180.0,
                   batch_lines=1_000_000)

    @classmethod
    def smoke(cls) -> Sizes:
        """A run of seconds per scenario that keeps the suite working."""
        return cls(quick=True, throughput_jobs=1_000, queued_probe_jobs=200, warmup_jobs=100,
                   transport_jobs=200, naive_jobs=500, ceiling_jobs=1_000,
                   ceiling_httpx_jobs=200, latency_jobs=100, latency_rate=10.0,
                   scaling_jobs=500, capacity_jobs=500, rpm_jobs=300, rpm=3_000,
                   rpm_window_s=2, memory_rounds=1, memory_round_jobs=1_000, stall_s=20.0,
                   run_budget_s=60.0, point_budget_s=30.0, memory_budget_s=60.0,
                   batch_lines=10_000)


def deployment(upstream: str, *, concurrency: int = CAPACITY, rpm: int = 0,
               name: str = DEPLOYMENT) -> dict[str, Any]:
    """The one deployment every broker run serves, pointed at the simulated provider."""
    return {"name": name, "provider": "openai", "base_url": f"{upstream}/v1",
            "model": UPSTREAM_MODEL, "capacity": {"concurrency": concurrency, "rpm": rpm},
            "price": {"input_per_1m": 0.15, "output_per_1m": 0.60}, "timeout_s": 30}


def catalog(upstream: str, *, concurrency: int = CAPACITY, rpm: int = 0,
            **broker: Any) -> dict[str, Any]:
    """A catalog of one model, one deployment and one tenant; broker settings at defaults."""
    return {
        "broker": dict(broker),
        "models": {MODEL: {"deployments": [deployment(upstream, concurrency=concurrency,
                                                      rpm=rpm)]}},
        "tenants": {TENANT: {"key_sha256": hash_key(TENANT_KEY), "allowed_models": [MODEL]}},
    }


def prompt(i: int) -> str:
    """A short, distinct user prompt (about 20 tokens)."""
    return f"Job {i}: summarise the queue, the token budget and the latency of this request."


def chat_body(i: int) -> dict[str, Any]:
    """The OpenAI chat body of job `i`, as the upstream receives it."""
    return {"model": UPSTREAM_MODEL, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": prompt(i)}]}


def job(i: int) -> dict[str, Any]:
    """Broker job `i`: the same chat request, addressed to the logical model."""
    return {"model": MODEL, "api_key": TENANT_KEY, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": prompt(i)}]}


def jobs(count: int, start: int = 0) -> list[dict[str, Any]]:
    """`count` broker jobs numbered from `start`."""
    return [job(i) for i in range(start, start + count)]
