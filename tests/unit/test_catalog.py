"""The catalog validates fast and names the file, the field and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.catalog import Catalog, EnvOverrides, hash_key, parse_catalog
from broker.errors import ConfigError


def _minimal(**broker: Any) -> dict[str, Any]:
    return {"broker": broker, "models": {"m": {"deployments": [
        {"name": "d1", "base_url": "http://x/v1", "model": "gpt-4o-mini"}]}},
        "tenants": {"t": {"key_sha256": hash_key("k"), "allowed_models": ["m", "emb-*"]}}}


def test_minimal_catalog_gets_defaults() -> None:
    catalog = parse_catalog(_minimal(), Path("c.yaml"), EnvOverrides())
    assert isinstance(catalog, Catalog)
    assert catalog.deployments["d1"].capacity.concurrency == 16
    assert catalog.model_of_deployment == {"d1": "m"}
    assert catalog.broker.http_transport == "aiohttp-direct"


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIBROKER_REDIS_URL", "redis://elsewhere:6380/2")
    monkeypatch.setenv("AIBROKER_BATCH_SIZE", "7")
    catalog = parse_catalog(_minimal(redis_url="redis://file:6379/0"), Path("c.yaml"))
    assert catalog.broker.redis_url == "redis://elsewhere:6380/2"
    assert catalog.broker.batch_size == 7


def test_duplicate_deployment_names_are_refused() -> None:
    data = _minimal()
    data["models"]["n"] = data["models"]["m"]
    with pytest.raises(ConfigError, match="'d1' is declared by both 'm' and 'n'"):
        parse_catalog(data, Path("c.yaml"), EnvOverrides())


def test_visibility_timeout_must_exceed_task_time_limit() -> None:
    with pytest.raises(ConfigError, match="visibility_timeout_s"):
        parse_catalog(_minimal(visibility_timeout_s=100, model_task_time_limit_s=60),
                      Path("c.yaml"), EnvOverrides())


@pytest.mark.parametrize(("patch", "field"), [
    ({"tenants": {"t": {"key_sha256": "not-hex"}}}, "tenants.t.key_sha256"),
    ({"tenants": {"bad name": {"key_sha256": hash_key("k")}}}, "tenants.bad name"),
    ({"broker": {"batch_size": 0}}, "broker.batch_size"),
    ({"broker": {"http_transport": "curl"}}, "broker.http_transport"),
])
def test_errors_name_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog({**_minimal(), **patch}, Path("conf/c.yaml"), EnvOverrides())
    assert "conf/c.yaml" in caught.value.message
    assert field in caught.value.message


def test_tenant_key_match_and_wildcards() -> None:
    catalog = parse_catalog(_minimal(), Path("c.yaml"), EnvOverrides())
    assert catalog.find_tenant(hash_key("k")) is not None
    assert catalog.find_tenant(hash_key("other")) is None
    tenant = catalog.tenants["t"]
    assert tenant.allows("m")
    assert tenant.allows("emb-large")
    assert not tenant.allows("mm")


def test_price_is_exact_in_nano_usd() -> None:
    catalog = parse_catalog(_minimal(), Path("c.yaml"), EnvOverrides())
    price = catalog.deployments["d1"].price.model_copy(update={"input_per_1m": 0.15,
                                                              "output_per_1m": 0.6})
    assert price.cost_nanousd(1000, 100) == 150_000 + 60_000
