"""OpenAI-compatible presets: each registered from its own file, with its parameter quirks."""

from __future__ import annotations

import json
import pkgutil
from pathlib import Path
from typing import Any

import pytest

import workers.providers.presets as presets_package
from broker.catalog import Deployment, parse_catalog
from broker.errors import UpstreamRateLimited, UpstreamRejected
from broker.schemas import ChatMessage, JobBody
from workers.providers.base import HttpReply, get_adapter, registered_names
from workers.providers.openai_compat import OpenAICompatibleAdapter
from workers.providers.presets.base import PresetAdapter

PRESETS = ("mistral", "groq", "together", "deepseek", "vllm", "ollama", "llamacpp", "lmstudio")
JOB = JobBody(model="m", messages=[ChatMessage(role="user", content="hi")],
              max_completion_tokens=50, seed=3, user="user-1", temperature=0.5)
# What each server receives for JOB besides model, messages and temperature.
EXPECTED: dict[str, dict[str, Any]] = {
    "mistral": {"max_tokens": 50, "random_seed": 3},
    "groq": {"max_completion_tokens": 50, "seed": 3, "user": "user-1"},
    "together": {"max_tokens": 50, "seed": 3, "user": "user-1"},
    "deepseek": {"max_tokens": 50, "user": "user-1"},
    "vllm": {"max_completion_tokens": 50, "seed": 3, "user": "user-1"},
    "ollama": {"max_tokens": 50, "seed": 3},
    "llamacpp": {"max_tokens": 50, "seed": 3},
    "lmstudio": {"max_tokens": 50, "seed": 3},
}


def deployment(provider: str) -> Deployment:
    return Deployment(name="d", provider=provider, base_url="http://llm.test:8000/v1",
                      model="served-model")


def test_every_module_in_the_folder_registers_its_preset() -> None:
    modules = {m.name for m in pkgutil.iter_modules(presets_package.__path__)} - {"base"}
    assert modules == set(PRESETS)
    assert set(PRESETS) <= set(registered_names())
    for name in PRESETS:
        adapter = get_adapter(name)
        assert isinstance(adapter, PresetAdapter) and adapter.name == name


@pytest.mark.parametrize("name", PRESETS)
def test_preset_payload_quirks(name: str) -> None:
    request = get_adapter(name).build_request(deployment(name), JOB, None)
    sent = json.loads(request.body)
    assert sent == {"model": "served-model", "messages": [{"role": "user", "content": "hi"}],
                    "temperature": 0.5, **EXPECTED[name]}
    assert request.url == "http://llm.test:8000/v1/chat/completions"


@pytest.mark.parametrize("name", PRESETS)
def test_key_is_optional_and_sent_as_bearer(name: str) -> None:
    adapter = get_adapter(name)
    assert "Authorization" not in adapter.build_request(deployment(name), JOB, None).headers
    with_key = adapter.build_request(deployment(name), JOB, "sk-local")
    assert with_key.headers["Authorization"] == "Bearer sk-local"


def test_mistral_embeddings_dimension_is_renamed() -> None:
    body = JobBody(model="e", input=["a"], dimensions=256)
    request = get_adapter("mistral").build_request(deployment("mistral"), body, None)
    assert request.url.endswith("/embeddings")
    assert json.loads(request.body) == {"model": "served-model", "input": ["a"],
                                        "output_dimension": 256}


def test_errors_map_like_any_openai_compatible_server() -> None:
    adapter = get_adapter("ollama")
    missing = adapter.map_error(HttpReply(404, {}, b'{"error": "model \\"x\\" not found"}'))
    assert isinstance(missing, UpstreamRejected) and missing.message == 'model "x" not found'
    limited = adapter.map_error(HttpReply(429, {"retry-after": "2"}, b'{"error": {}}'))
    assert isinstance(limited, UpstreamRateLimited) and limited.retry_after == 2.0


def test_a_new_preset_is_one_constructor_call_and_one_catalog_entry() -> None:
    adapter = PresetAdapter("acme-llm", renames={"max_completion_tokens": "max_tokens"},
                            drops=("seed",))
    assert isinstance(adapter, OpenAICompatibleAdapter)
    catalog = parse_catalog({"models": {"acme": {"deployments": [
        {"name": "acme-1", "provider": "acme-llm", "base_url": "http://acme.test/v1",
         "model": "acme-7b"}]}}}, source=Path("inline.yaml"))
    sent = json.loads(adapter.build_request(catalog.deployments["acme-1"], JOB, None).body)
    assert sent["max_tokens"] == 50 and "seed" not in sent and sent["model"] == "acme-7b"
