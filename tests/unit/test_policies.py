"""Guards and routing are pure decisions: no Redis, no Celery."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from broker.catalog import EnvOverrides, hash_key, parse_catalog
from broker.schemas import JobBody
from policies.guards import build_guards
from policies.pipeline import PolicyPipeline
from policies.routing import get_strategy

CATALOG = parse_catalog({
    "models": {
        "chat": {"deployments": [
            {"name": "a", "base_url": "http://x/v1", "model": "gpt-4o-mini", "weight": 3},
            {"name": "b", "base_url": "http://y/v1", "model": "gpt-4o-mini", "weight": 1}]},
        "big": {"deployments": [{"name": "c", "base_url": "http://z/v1", "model": "gpt-4.1"}]},
    },
    "tenants": {"t": {"key_sha256": hash_key("key-t"), "allowed_models": ["chat"],
                      "max_input_tokens": 50}},
}, Path("c.yaml"), EnvOverrides())


def _body(model: str = "chat", text: str = "hi") -> JobBody:
    return JobBody.model_validate({"model": model,
                                   "messages": [{"role": "user", "content": text}]})


@pytest.mark.parametrize(("body", "key", "code"), [
    (_body(), "wrong", "unauthenticated"),
    (_body("nope"), "key-t", "unknown_model"),
    (_body("big"), "key-t", "model_not_allowed"),
    (_body(text="word " * 100), "key-t", "input_too_large"),
])
def test_each_guard_refuses_with_its_code(body: JobBody, key: str, code: str) -> None:
    verdict, _ = PolicyPipeline(CATALOG).evaluate("j", body, hash_key(key))
    assert not verdict.allowed
    assert verdict.rejection is not None
    assert verdict.rejection.code == code


def test_admitted_job_carries_tenant_and_token_count() -> None:
    verdict, ctx = PolicyPipeline(CATALOG).evaluate("j", _body(), hash_key("key-t"))
    assert verdict.allowed
    assert ctx.tenant_name == "t"
    assert ctx.input_tokens == 8  # "hi" + "user" + 3 per message + 3 reply primer


def test_unknown_guard_name_is_an_error() -> None:
    with pytest.raises(KeyError, match="no_such_guard"):
        build_guards(("tenant_auth", "no_such_guard"))


def test_weighted_routing_follows_weights() -> None:
    strategy = get_strategy("weighted")
    rng = random.Random(5)
    deployments = CATALOG.models["chat"].deployments
    picks = Counter(strategy.choose(deployments, 10, rng, {}).name for _ in range(4000))
    assert 0.72 < picks["a"] / 4000 < 0.78


def test_unknown_strategy_is_an_error() -> None:
    with pytest.raises(KeyError, match="unknown routing strategy"):
        get_strategy("fastest-ever")
