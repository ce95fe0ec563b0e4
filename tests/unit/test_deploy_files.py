"""The deployment files agree with the catalog: examples/aibroker.yaml, compose.yaml, Dockerfile."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from broker.catalog import Catalog, hash_key, load_catalog
from broker.cli.main import build_parser
from broker.simulator.settings import SimSettings
from broker.tokens import get_encoding
from broker.workerplan import model_worker
from policies.routing import get_strategy
from workers.providers.base import registered_names

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "aibroker.yaml"
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
EXAMPLE_KEYS = {"analytics": "sk-example-analytics", "support": "sk-example-support"}
# Services running the broker's own code against Redis (everything but redis and upstream).
BROKER_SERVICES_MIN = {"flower", "gateway"}
SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|AUTH)", re.IGNORECASE)


# --- helpers ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _flag(command: list[str], name: str) -> str | None:
    """The value after `name` in an argument list (None when absent)."""
    for index, part in enumerate(command[:-1]):
        if part == name:
            return command[index + 1]
    return None


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.split("=", 1) for item in env]
        return {pair[0]: pair[1] if len(pair) == 2 else None for pair in pairs}
    return {str(name): None if value is None else str(value) for name, value in env.items()}


def _model_services(compose: dict[str, Any]) -> dict[str, list[tuple[str, list[str]]]]:
    """Deployment name -> the (service, command) pairs running a model worker for it."""
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for name, service in _services(compose).items():
        command = _command(service)
        if _flag(command, "--stage") == "model":
            deployment = _flag(command, "--deployment")
            assert deployment, f"{name}: a model worker must name its --deployment"
            found.setdefault(deployment, []).append((name, command))
    return found


def _broker_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = _services(compose)
    names = BROKER_SERVICES_MIN | {
        name for name, service in services.items() if _flag(_command(service), "--stage")
    }
    return {name: services[name] for name in names}


def _seconds(duration: str | int) -> float:
    """A compose duration (`5m`, `1m30s`, `90s`, `1h`) in seconds."""
    if isinstance(duration, int):
        return float(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    return sum(float(number) * unit[suffix] for number, suffix in parts)


def _assert_all_fields_written(obj: BaseModel, where: str) -> None:
    missing = set(type(obj).model_fields) - obj.model_fields_set
    assert not missing, f"{where}: the example leaves out {sorted(missing)}"
    for field in type(obj).model_fields:
        value = getattr(obj, field)
        values = value.values() if isinstance(value, dict) else (
            value if isinstance(value, list) else [value])
        for index, item in enumerate(values):
            if isinstance(item, BaseModel):
                _assert_all_fields_written(item, f"{where}.{field}[{index}]")


# --- the example catalog ----------------------------------------------------------------------

def test_example_catalog_validates_and_has_the_documented_shape(catalog: Catalog) -> None:
    assert len(catalog.models) >= 2
    assert len(catalog.deployments) >= 3
    assert len({urlsplit(d.base_url).hostname for d in catalog.deployments.values()}) >= 3
    assert len(catalog.tenants) == 2
    patterns = [p for t in catalog.tenants.values() for p in t.allowed_models]
    assert any(ch in p for p in patterns for ch in "*?["), "no wildcard in allowed_models"
    # Every tenant may call at least one model of the catalog, and none names a missing one.
    for name, tenant in catalog.tenants.items():
        assert any(tenant.allows(model) for model in catalog.models), name
        for pattern in tenant.allowed_models:
            assert any(fnmatch.fnmatchcase(model, pattern) for model in catalog.models), (
                f"{name}: {pattern} matches no model")


def test_example_catalog_writes_out_every_field(catalog: Catalog) -> None:
    _assert_all_fields_written(catalog, "catalog")


def test_example_catalog_names_only_known_strategies_providers_and_encodings(
    catalog: Catalog,
) -> None:
    providers = set(registered_names())
    for model, spec in catalog.models.items():
        assert get_strategy(spec.strategy) is not None, model
        for deployment in spec.deployments:
            assert deployment.provider in providers, deployment.name
            if deployment.encoding is not None:
                assert get_encoding(deployment.encoding).name == deployment.encoding


def test_example_tenant_keys_from_the_comment_authenticate(catalog: Catalog) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for tenant, key in EXAMPLE_KEYS.items():
        assert key in text, f"the example key of {tenant} is not stated in the file"
        found = catalog.find_tenant(hash_key(key))
        assert found is not None and found[0] == tenant
    assert catalog.find_tenant(hash_key("sk-example-wrong")) is None


# --- compose.yaml -----------------------------------------------------------------------------

def test_one_model_service_per_deployment_sized_by_the_catalog(
    catalog: Catalog, compose: dict[str, Any]
) -> None:
    found = _model_services(compose)
    assert set(found) == set(catalog.deployments), "model services and deployments differ"
    for name in catalog.deployments:
        assert len(found[name]) == 1, f"{name} has services {[s for s, _ in found[name]]}"
        service, command = found[name][0]
        assert service == f"model-{name}"
        # The worker sizes itself from the catalog; a fixed width here would drift from it.
        assert "--concurrency" not in command and "-c" not in command, service


def test_model_services_get_only_their_own_provider_key_by_name(
    catalog: Catalog, compose: dict[str, Any]
) -> None:
    key_names = {d.api_key_env for d in catalog.deployments.values() if d.api_key_env}
    assert key_names, "the example should show api_key_env"
    model_of_service = {service: deployment
                        for deployment, runs in _model_services(compose).items()
                        for service, _ in runs}
    for name, service in _services(compose).items():
        env = _environment(service)
        deployment = model_of_service.get(name)
        own = catalog.deployments[deployment].api_key_env if deployment else None
        if own:
            assert own in env, f"{name} does not receive {own}"
            assert env[own] is None, f"{name}: pass {own} by name only, not a value"
        assert not (key_names - {own}) & set(env), f"{name} receives another deployment's key"


def test_broker_services_share_config_redis_and_restart_policy(
    catalog: Catalog, compose: dict[str, Any]
) -> None:
    for name, service in _broker_services(compose).items():
        env = _environment(service)
        assert env.get("AIBROKER_CONFIG") == "/etc/aibroker/aibroker.yaml", name
        assert env.get("AIBROKER_REDIS_URL") == "redis://redis:6379/0", name
        assert "./examples/aibroker.yaml:/etc/aibroker/aibroker.yaml:ro" in service["volumes"]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["restart"] == "unless-stopped", name
        assert service["build"] == "." and service["image"], name
    for runs in _model_services(compose).values():
        for name, _ in runs:
            grace = _seconds(_services(compose)[name]["stop_grace_period"])
            assert grace >= catalog.broker.model_task_time_limit_s, (
                f"{name}: stop_grace_period {grace}s cuts in-flight model tasks short")


def test_redis_keeps_jobs_append_only_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = _services(compose)["redis"]
    assert redis["image"] == "redis:7"
    command = _command(redis)
    assert command[0] == "redis-server"
    assert _flag(command, "--appendonly") == "yes"
    assert _flag(command, "--maxmemory-policy") == "noeviction"
    volume = next(v for v in redis["volumes"] if v.endswith(":/data"))
    assert volume.split(":")[0] in (compose.get("volumes") or {}), "redis /data is not a volume"
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_flower_requires_basic_auth_from_the_environment(compose: dict[str, Any]) -> None:
    flower = _services(compose)["flower"]
    command = _command(flower)
    assert command[:4] == ["celery", "-A", "broker.app", "flower"]
    assert "--port=5555" in command
    # Flower reads FLOWER_BASIC_AUTH itself; compose refuses to start without it.
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]+\}",
                        _environment(flower)["FLOWER_BASIC_AUTH"] or "")
    assert not any(part.startswith("--basic-auth=") and "$" not in part for part in command)
    columns = (_flag(command, "--tasks-columns")
               or next(p.split("=", 1)[1] for p in command if p.startswith("--tasks-columns=")))
    assert not {"args", "kwargs", "result"} & set(columns.split(","))
    assert all(str(port).startswith("127.0.0.1:") for port in flower["ports"])


def test_no_secret_is_written_in_compose() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert not re.findall(r"(?<![A-Za-z0-9])sk-", text), "a literal provider key in compose.yaml"
    data = yaml.safe_load(text)
    for name, service in data["services"].items():
        for var, value in _environment(service).items():
            if SECRET_NAME.search(var):
                assert value is None or re.fullmatch(
                    r"\$\{" + re.escape(var) + r"(:?[?-][^}]*)?\}", value
                ), f"{name}: {var} must be passed by name or as ${{{var}}}"


def test_compose_commands_parse_with_the_cli(compose: dict[str, Any]) -> None:
    parser = build_parser()
    for name, service in _services(compose).items():
        command = _command(service)
        if not command or command[0] != "aibroker":
            continue
        args = parser.parse_args(command[1:])
        if args.command == "upstream":
            given = {f: getattr(args, f) for f in SimSettings.model_fields if hasattr(args, f)}
            settings = SimSettings.model_validate(given)
            assert settings.host == "0.0.0.0", f"{name} must listen on every interface"
            assert service["profiles"] == ["demo"]


def test_deployments_pointing_at_a_compose_service_match_its_port(
    catalog: Catalog, compose: dict[str, Any]
) -> None:
    services = _services(compose)
    for deployment in catalog.deployments.values():
        url = urlsplit(deployment.base_url)
        if url.hostname in services:
            command = _command(services[url.hostname])
            assert _flag(command, "--port") == str(url.port), deployment.name


def test_docker_compose_config_is_valid(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (the project's test command installs it)")
    env = {**os.environ, "FLOWER_BASIC_AUTH": "ops:example-only"}
    for profile in ([], ["--profile", "demo"]):
        done = subprocess.run([binary, "-f", str(COMPOSE), *profile, "config", "-q"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr
    env.pop("FLOWER_BASIC_AUTH")
    refused = subprocess.run([binary, "-f", str(COMPOSE), "config", "-q"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0 and "FLOWER_BASIC_AUTH" in refused.stderr


# --- image ------------------------------------------------------------------------------------

def test_image_runs_as_non_root_and_bakes_no_secret() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    bases = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert bases and all(base == "python:3.11-slim" for base in bases)
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    for line in lines:
        if line.upper().startswith(("ENV ", "ARG ")):
            assert not SECRET_NAME.search(line), f"secret-like build setting: {line}"
    rules = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", ".dockerignore must start by excluding everything"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert {"pyproject.toml", "broker", "workers", "policies"} <= allowed
    assert not allowed & {".env", "examples", "tests", ".venv", ".git"}


# --- aibroker workers plan --------------------------------------------------------------------

def test_workers_plan_prints_one_command_per_deployment(catalog: Catalog) -> None:
    env = {**os.environ, "AIBROKER_CONFIG": str(EXAMPLE)}
    done = subprocess.run([sys.executable, "-m", "broker.cli.main", "workers", "plan"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines()
                if line and not line.startswith("#")]
    by_queue = {_flag(command, "-Q"): command for command in commands}
    assert len(by_queue) == len(commands) == len(catalog.deployments) + 1
    assert _flag(by_queue["policy,route"], "-c") == str(catalog.broker.gateway_concurrency)
    for name in catalog.deployments:
        command = by_queue[f"model.{name}"]
        assert _flag(command, "-c") == str(model_worker(catalog, name).concurrency), name
