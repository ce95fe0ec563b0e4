"""Every provider end to end: real workers, each adapter against the simulator in its own format."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.catalog import hash_key
from broker.cluster import LocalCluster
from broker.localstack import EmbeddedRedis
from broker.schemas import JobResult, JobStatus
from tests.support import KEYS, client_for

# Ends in letters no job id (hex) contains, so even its last characters are a sentinel.
PROVIDER_KEY = "sk-sentinel-provider-key-QZXW"
KEY_ENV = "AIBROKER_TEST_PROVIDER_KEY"
SYSTEM = "Answer briefly."
# provider -> (logical model, deployment, model the simulator sees, path it is called on)
CHAT = {
    "openai": ("openai", "openai-main", "gpt-4o-mini", "/v1/chat/completions"),
    "azure": ("azure", "azure-main", "chat-deploy",
              "/openai/deployments/chat-deploy/chat/completions"),
    "anthropic": ("claude", "claude-main", "claude-sonnet-4-5", "/v1/messages"),
    "gemini": ("gemini", "gemini-main", "gemini-2.0-flash",
               "/v1beta/models/gemini-2.0-flash:generateContent"),
}
EMBEDDINGS = {
    "openai": ("openai", "gpt-4o-mini", "/v1/embeddings"),
    "azure": ("azure-embed", "embed-deploy", "/openai/deployments/embed-deploy/embeddings"),
    "gemini": ("gemini-embed", "text-embedding-004",
               "/v1beta/models/text-embedding-004:batchEmbedContents"),
}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def _deployment(name: str, provider: str, base_url: str, model: str, price_in: float = 1.0,
                **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": provider, "base_url": base_url, "model": model,
            "api_key_env": KEY_ENV, "capacity": {"concurrency": 4}, "timeout_s": 10,
            "price": {"input_per_1m": price_in, "output_per_1m": 2.0}, **extra}


def _catalog(sim: str, down: str, key_file: Path) -> dict[str, Any]:
    gemini_key: dict[str, Any] = {"api_key_env": None, "api_key_file": str(key_file)}
    return {
        "broker": {"batch_size": 8, "visibility_timeout_s": 40, "model_task_time_limit_s": 20,
                   "retry": {"max_attempts": 3, "backoff_base_s": 0.05, "backoff_max_s": 0.2}},
        "models": {
            "openai": {"deployments": [_deployment("openai-main", "openai", f"{sim}/v1",
                                                   "gpt-4o-mini")]},
            "azure": {"deployments": [_deployment("azure-main", "azure", sim, "chat-deploy",
                                                  api_version="2024-10-21")]},
            "azure-embed": {"deployments": [_deployment("azure-embed", "azure", sim,
                                                        "embed-deploy")]},
            "claude": {"deployments": [_deployment("claude-main", "anthropic", f"{sim}/v1",
                                                   "claude-sonnet-4-5", default_max_tokens=64)]},
            "gemini": {"deployments": [_deployment("gemini-main", "gemini", f"{sim}/v1beta",
                                                   "gemini-2.0-flash", **gemini_key)]},
            "gemini-embed": {"deployments": [_deployment(
                "gemini-embed", "gemini", f"{sim}/v1beta", "models/text-embedding-004",
                **gemini_key)]},
            # One logical model on two providers: the cheap OpenAI deployment is down.
            "smart": {"strategy": "lowest-cost", "deployments": [
                _deployment("openai-down", "openai", f"{down}/v1", "gpt-4o", price_in=0.1),
                _deployment("claude-standby", "anthropic", f"{sim}/v1", "claude-haiku-4-5",
                            price_in=5.0)]},
        },
        "tenants": {"alpha": {"key_sha256": hash_key(KEYS["alpha"]), "allowed_models": ["*"],
                              "max_input_tokens": 2000}},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One simulator speaking every format (key required), one that always answers 503."""
    tmp: Path = tmp_path_factory.mktemp("providers")
    key_file = tmp / "gemini.key"
    key_file.write_text(PROVIDER_KEY + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as env, EmbeddedRedis() as server, \
            LocalCluster(tmp, server.url) as running:
        env.setenv(KEY_ENV, PROVIDER_KEY)  # inherited by the worker processes
        sim = running.start_upstream("sim", "--seed", "3", "--latency", "5",
                                     "--require-api-key", "--api-key", PROVIDER_KEY)
        down = running.start_upstream("down", "--rate-503", "1", "--retry-after-s", "0")
        running.write_catalog(_catalog(sim, down, key_file))
        running.start_workers()
        yield running


def _served(cluster: LocalCluster, model: str) -> tuple[int, int, int]:
    usage = cluster.upstream_stats("sim")["usage"].get(model, {})
    return (usage.get("requests", 0), usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0))


def _requests_on(cluster: LocalCluster, path: str) -> list[dict[str, Any]]:
    log = cluster.upstream_requests("sim")["requests"]
    return [entry for entry in log if entry["path"] == path and entry["status"] == 200]


def _chat(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "api_key": KEYS["alpha"], "max_tokens": 12,
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": text}], **extra}


def _run(cluster: LocalCluster, jobs: list[dict[str, Any]]) -> list[JobResult]:
    with client_for(cluster) as client:
        return client.wait_all(client.submit_many(jobs), timeout=90)


def _usage_sums(results: list[JobResult]) -> tuple[int, int, int]:
    return (len(results), sum(r.usage.prompt_tokens for r in results),
            sum(r.usage.completion_tokens for r in results))


def _patch_sim(cluster: LocalCluster, patch: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{cluster.upstreams['sim']}/_sim/config", data=json.dumps(patch).encode(),
        method="PATCH", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.mark.parametrize("provider", list(CHAT))
def test_chat_job_in_the_providers_own_format(cluster: LocalCluster, provider: str) -> None:
    model, deployment, upstream_model, path = CHAT[provider]
    before = _served(cluster, upstream_model)
    results = _run(cluster, [_chat(model, f"question {i} for {provider}") for i in range(3)])

    assert [r.status for r in results] == [JobStatus.SUCCEEDED] * 3
    for result in results:
        assert result.route.deployment == deployment
        assert result.response is not None and result.response["object"] == "chat.completion"
        choice = result.response["choices"][0]
        assert choice["message"]["role"] == "assistant"
        assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
        assert choice["finish_reason"] == "length"  # 12 < the simulator's 16 tokens
        assert result.usage.completion_tokens == 12 and not result.usage.estimated
    after = _served(cluster, upstream_model)
    assert _usage_sums(results) == tuple(a - b for a, b in zip(after, before, strict=True))

    bodies = [entry["body"] for entry in _requests_on(cluster, path)]
    assert len(bodies) >= 3
    last = bodies[-1]
    if provider == "anthropic":
        assert last["system"] == SYSTEM and last["max_tokens"] == 12
        assert {m["role"] for m in last["messages"]} == {"user"}
    elif provider == "gemini":
        assert last["systemInstruction"] == {"parts": [{"text": SYSTEM}]}
        assert last["generationConfig"] == {"maxOutputTokens": 12}
    else:
        assert last["messages"][0] == {"role": "system", "content": SYSTEM}
        assert ("model" in last) is (provider == "openai")


@pytest.mark.parametrize("provider", list(EMBEDDINGS))
def test_embeddings_job_in_the_providers_own_format(cluster: LocalCluster, provider: str) -> None:
    model, upstream_model, path = EMBEDDINGS[provider]
    before = _served(cluster, upstream_model)
    job = {"model": model, "api_key": KEYS["alpha"], "input": ["one two three", provider]}
    [result] = _run(cluster, [job])

    assert result.status is JobStatus.SUCCEEDED and result.kind == "embeddings"
    assert result.response is not None and result.response["object"] == "list"
    vectors = [item["embedding"] for item in result.response["data"]]
    assert len(vectors) == 2 and all(len(v) == 8 and isinstance(v[0], float) for v in vectors)
    after = _served(cluster, upstream_model)
    assert (1, result.usage.prompt_tokens, 0) == tuple(
        a - b for a, b in zip(after, before, strict=True))
    assert result.usage.completion_tokens == 0
    # Gemini's embeddings replies carry no usage: the broker counts the input itself.
    assert result.usage.estimated is (provider == "gemini")
    assert _requests_on(cluster, path), f"nothing reached {path}"


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_tool_calls_are_translated_both_ways(cluster: LocalCluster, provider: str) -> None:
    model = CHAT[provider][0]
    [result] = _run(cluster, [_chat(model, "Weather in Paris?", tools=[WEATHER_TOOL],
                                    tool_choice="required")])
    assert result.status is JobStatus.SUCCEEDED and result.response is not None
    choice = result.response["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert isinstance(json.loads(call["function"]["arguments"]), dict)


def test_failing_openai_deployment_falls_back_to_anthropic(cluster: LocalCluster) -> None:
    before = _served(cluster, "claude-haiku-4-5")
    results = _run(cluster, [_chat("smart", f"fallback {i}") for i in range(4)])

    assert [r.status for r in results] == [JobStatus.SUCCEEDED] * 4
    for result in results:
        assert result.route.deployment == "claude-standby"
        assert result.route.attempts[-1].status == "ok"
        assert result.response is not None and result.response["object"] == "chat.completion"
        assert result.response["choices"][0]["message"]["role"] == "assistant"
    tried_openai = [a for r in results for a in r.route.attempts if a.deployment == "openai-down"]
    assert tried_openai and {a.error_code for a in tried_openai} == {"upstream_unavailable"}
    after = _served(cluster, "claude-haiku-4-5")
    assert _usage_sums(results) == tuple(a - b for a, b in zip(after, before, strict=True))


REJECTED_MESSAGES = {"openai": "Incorrect API key provided", "azure": "Access denied",
                     "anthropic": "invalid x-api-key", "gemini": "API key not valid"}


def test_provider_key_never_shows_in_results_logs_or_errors(cluster: LocalCluster) -> None:
    served = _run(cluster, [_chat(CHAT[p][0], f"secret check {p}") for p in CHAT] + [
        {"model": "gemini-embed", "api_key": KEYS["alpha"], "input": "key from a file"}])
    assert all(r.status is JobStatus.SUCCEEDED for r in served)

    _patch_sim(cluster, {"api_key": "sk-rotated-elsewhere-0000"})  # every key is now wrong
    try:
        refused = _run(cluster, [_chat(CHAT[p][0], f"refused {p}") for p in CHAT])
    finally:
        _patch_sim(cluster, {"api_key": PROVIDER_KEY})
    for provider, result in zip(CHAT, refused, strict=True):
        assert result.status is JobStatus.FAILED and result.error is not None
        assert (result.error.code, result.error.retryable) == ("upstream_rejected", False)
        assert REJECTED_MESSAGES[provider] in result.error.message
        assert len(result.route.attempts) == 1  # a 401 is never retried

    texts = [r.model_dump_json() for r in served + refused]
    texts += [cluster.procs.log(name) for name in cluster.procs.processes]
    texts.append(json.dumps(cluster.upstream_requests("sim")))  # bodies and paths, no headers
    for text in texts:
        assert PROVIDER_KEY not in text
        assert PROVIDER_KEY[-4:] not in text  # not even the masked tail a 401 echoes


def test_embeddings_job_on_an_anthropic_deployment_fails_alone(cluster: LocalCluster) -> None:
    embed = {"model": "claude", "api_key": KEYS["alpha"], "input": "no embeddings here"}
    refused, chat = _run(cluster, [embed, _chat("claude", "batched alongside")])
    assert refused.status is JobStatus.FAILED and refused.error is not None
    assert refused.error.code == "upstream_rejected"
    assert chat.status is JobStatus.SUCCEEDED
