"""The demo's catalog and workload: three models, four deployments, two tenants."""

from __future__ import annotations

import random
import secrets
from typing import Any

from broker.catalog import hash_key

WORDS = ("queue", "token", "model", "budget", "tenant", "latency", "ledger", "policy",
         "route", "worker", "capacity", "result", "prompt", "deploy", "batch")


def demo_keys() -> dict[str, str]:
    """Fresh random API keys for the demo tenants."""
    return {"analytics": "sk-demo-" + secrets.token_urlsafe(18),
            "support": "sk-demo-" + secrets.token_urlsafe(18)}


def demo_catalog(upstream_url: str, tenant_keys: dict[str, str]) -> dict[str, Any]:
    """A catalog pointing every deployment at the simulated provider."""
    base = f"{upstream_url}/v1"

    def deployment(name: str, model: str, concurrency: int, price_in: float,
                   price_out: float, weight: float = 1.0) -> dict[str, Any]:
        return {"name": name, "provider": "openai", "base_url": base, "model": model,
                "capacity": {"concurrency": concurrency, "rpm": 6000, "tpm": 2_000_000},
                "price": {"input_per_1m": price_in, "output_per_1m": price_out},
                "weight": weight, "timeout_s": 30}

    return {
        "broker": {"batch_size": 32, "visibility_timeout_s": 300,
                   "model_task_time_limit_s": 120, "retry": {"max_attempts": 5}},
        "models": {
            "gpt-4o-mini": {"strategy": "weighted", "deployments": [
                deployment("mini-east", "gpt-4o-mini", 32, 0.15, 0.60, weight=2),
                deployment("mini-west", "gpt-4o-mini", 16, 0.15, 0.60),
            ]},
            "gpt-4.1": {"deployments": [deployment("gpt41-main", "gpt-4.1", 16, 2.0, 8.0)]},
            "text-embedding-3-small": {"deployments": [
                deployment("embed-main", "text-embedding-3-small", 16, 0.02, 0.0)]},
        },
        "tenants": {
            "analytics": {"key_sha256": hash_key(tenant_keys["analytics"]),
                          "allowed_models": ["gpt-4o-mini", "text-embedding-*"],
                          "max_input_tokens": 4000},
            "support": {"key_sha256": hash_key(tenant_keys["support"]),
                        "allowed_models": ["gpt-*"], "max_input_tokens": 2000},
        },
    }


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _chat(model: str, key: str, rng: random.Random, **extra: Any) -> dict[str, Any]:
    return {"model": model, "api_key": key, "max_tokens": rng.randint(8, 48),
            "messages": [{"role": "system", "content": "You answer briefly."},
                         {"role": "user", "content": _sentence(rng, rng.randint(5, 60))}],
            **extra}


def demo_workload(tenant_keys: dict[str, str], seed: int = 7) -> list[dict[str, Any]]:
    """240 jobs over three models and two tenants, ten of which policy must refuse."""
    rng = random.Random(seed)
    analytics, support = tenant_keys["analytics"], tenant_keys["support"]
    jobs: list[dict[str, Any]] = []
    jobs += [_chat("gpt-4o-mini", analytics, rng, metadata={"demo": "chat"}) for _ in range(100)]
    jobs += [{"model": "text-embedding-3-small", "api_key": analytics,
              "input": [_sentence(rng, 12), _sentence(rng, 8)]} for _ in range(30)]
    jobs += [_chat("gpt-4o-mini", support, rng) for _ in range(60)]
    jobs += [_chat("gpt-4.1", support, rng) for _ in range(40)]
    # Ten that the policy stage refuses, one reason each kind:
    jobs += [_chat("gpt-4o-mini", "sk-wrong-" + secrets.token_hex(8), rng) for _ in range(3)]
    jobs += [_chat("gpt-4.1", analytics, rng) for _ in range(3)]  # not allowed
    jobs += [{"model": "gpt-4o-mini", "api_key": support,
              "messages": [{"role": "user", "content": _sentence(rng, 2500)}]}
             for _ in range(3)]  # over support's max_input_tokens
    jobs.append(_chat("gpt-5-preview", support, rng))  # not in the catalog
    rng.shuffle(jobs)
    return jobs
