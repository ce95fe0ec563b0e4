"""The Azure OpenAI adapter: deployment URLs, api-version, api-key, content filters, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker.catalog import Deployment
from broker.errors import UpstreamError, UpstreamRateLimited, UpstreamRejected, UpstreamUnavailable
from broker.schemas import ChatMessage, JobBody
from broker.simulator import azure_format
from broker.simulator.openai_format import ErrorKind, InvalidRequestError
from workers.providers.azure import DEFAULT_API_VERSION, AzureOpenAIAdapter
from workers.providers.base import HttpReply, get_adapter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "azure"
ADAPTER = AzureOpenAIAdapter()
DEPLOYMENT = Deployment(name="azure-mini", provider="azure",
                        base_url="https://contoso.openai.azure.test/", model="gpt-4o-mini-prod")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def reply(status: int, content: bytes | dict[str, Any],
          headers: dict[str, str] | None = None) -> HttpReply:
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    return HttpReply(status=status, headers=headers or {}, content=raw)


def chat(**params: Any) -> JobBody:
    return JobBody(model="mini", messages=[ChatMessage(role="user", content="Why a queue?")],
                   **params)


# --- build_request ---------------------------------------------------------------------------


def test_chat_request_uses_the_deployment_url_api_version_and_api_key() -> None:
    request = ADAPTER.build_request(DEPLOYMENT, chat(temperature=0.3, max_tokens=40), "azkey\n")
    assert request.url == ("https://contoso.openai.azure.test/openai/deployments/"
                           f"gpt-4o-mini-prod/chat/completions?api-version={DEFAULT_API_VERSION}")
    assert DEFAULT_API_VERSION == "2024-10-21"
    assert request.headers["api-key"] == "azkey"
    assert "Authorization" not in request.headers
    assert json.loads(request.body) == {
        "messages": [{"role": "user", "content": "Why a queue?"}],
        "max_tokens": 40, "temperature": 0.3}  # no `model`: the URL names the deployment


def test_embeddings_url_catalog_api_version_and_quoting() -> None:
    deployment = DEPLOYMENT.model_copy(update={
        "base_url": "https://contoso.openai.azure.test/openai/", "model": "embed 3/small",
        "api_version": "2025-04-01-preview"})
    request = ADAPTER.build_request(deployment, JobBody(model="e", input=["a", "b"]), None)
    assert request.url == ("https://contoso.openai.azure.test/openai/deployments/embed%203%2Fsmall"
                           "/embeddings?api-version=2025-04-01-preview")
    assert "api-key" not in request.headers
    assert json.loads(request.body) == {"input": ["a", "b"]}


# --- parse_reply -----------------------------------------------------------------------------


def test_chat_reply_drops_filter_annotations_and_keeps_usage() -> None:
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, fixture("chat_completion.json")))
    response = parsed.response
    assert "prompt_filter_results" not in response
    assert "content_filter_results" not in response["choices"][0]
    assert response["choices"][0]["message"]["content"] == (
        "Queues decouple producers from model workers.")
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (24, 9)


def test_filtered_completion_keeps_the_content_filter_finish_reason() -> None:
    content = reply(200, fixture("chat_content_filtered.json"))
    choice = ADAPTER.parse_reply(DEPLOYMENT, chat(), content).response["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None


def test_embeddings_reply() -> None:
    body = JobBody(model="e", input=["a", "b"])
    parsed = ADAPTER.parse_reply(DEPLOYMENT, body, reply(200, fixture("embeddings.json")))
    assert [item["index"] for item in parsed.response["data"]] == [0, 1]
    assert parsed.usage is not None and parsed.usage.prompt_tokens == 4


def test_rate_limit_headers_are_read() -> None:
    headers = {"x-ratelimit-remaining-requests": "119", "x-ratelimit-remaining-tokens": "119000"}
    content = reply(200, fixture("chat_completion.json"), headers)
    limits = ADAPTER.parse_reply(DEPLOYMENT, chat(), content).rate_limits
    assert (limits.remaining_requests, limits.remaining_tokens) == (119, 119000)


# --- map_error -------------------------------------------------------------------------------


def test_prompt_content_filter_names_the_categories() -> None:
    error = ADAPTER.map_error(reply(400, fixture("error_content_filter.json")))
    assert isinstance(error, UpstreamRejected) and not error.retryable
    assert error.detail == "content_filter"
    assert error.message.startswith("The response was filtered due to the prompt")
    assert error.message.endswith("(filtered: jailbreak, violence)")


@pytest.mark.parametrize(
    ("status", "name", "error_class", "detail"),
    [(400, "error_bad_request.json", UpstreamRejected, "context_length_exceeded"),
     (401, "error_unauthorized.json", UpstreamRejected, "401"),
     (404, "error_deployment_not_found.json", UpstreamRejected, "DeploymentNotFound"),
     (429, "error_rate_limit.json", UpstreamRateLimited, "429"),
     (500, "error_server.json", UpstreamUnavailable, "InternalServerError"),
     (503, "error_unavailable.json", UpstreamUnavailable, "ServiceUnavailable")],
)
def test_documented_errors(status: int, name: str, error_class: type[UpstreamError],
                           detail: str) -> None:
    error = ADAPTER.map_error(reply(status, fixture(name)))
    assert type(error) is error_class
    assert error.retryable is (error_class is not UpstreamRejected)
    assert (error.status, error.detail) == (status, detail)
    assert error.message == fixture(name)["error"]["message"]


def test_rate_limit_waits_retry_after_ms() -> None:
    headers = {"retry-after-ms": "6000", "retry-after": "6"}
    error = ADAPTER.map_error(reply(429, fixture("error_rate_limit.json"), headers))
    assert error.retry_after == 6.0


def test_registered_under_its_name() -> None:
    assert isinstance(get_adapter("azure"), AzureOpenAIAdapter)


# --- the simulator's Azure format speaks what the adapter expects ----------------------------


def _bound(path_suffix: str, **params: str) -> Any:
    for path, bind in azure_format.PATH_ENDPOINTS:
        if path.endswith(path_suffix):
            return bind(params)
    raise AssertionError(path_suffix)


def test_simulator_round_trip_takes_the_model_from_the_path() -> None:
    request = ADAPTER.build_request(DEPLOYMENT, chat(max_tokens=3), "k")
    endpoint = _bound("/chat/completions", deployment="gpt-4o-mini-prod",
                      **{"api-version": DEFAULT_API_VERSION})
    call = endpoint.parse(request.body)
    assert call.model == "gpt-4o-mini-prod" and "model" not in call.body
    body, served = endpoint.respond(call, 16)
    assert "prompt_filter_results" in body
    parsed = ADAPTER.parse_reply(DEPLOYMENT, chat(), reply(200, body))
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (
        call.prompt_tokens, served)
    assert served == 3 and parsed.response["choices"][0]["finish_reason"] == "length"


def test_simulator_requires_api_version() -> None:
    endpoint = _bound("/embeddings", deployment="embed")
    with pytest.raises(InvalidRequestError, match="api-version"):
        endpoint.parse(b'{"input": "x"}')


@pytest.mark.parametrize(
    ("kind", "status", "error_class"),
    [("invalid_request", 400, UpstreamRejected), ("invalid_api_key", 401, UpstreamRejected),
     ("rate_limit", 429, UpstreamRateLimited), ("capacity", 429, UpstreamRateLimited),
     ("server_error", 500, UpstreamUnavailable), ("unavailable", 503, UpstreamUnavailable)],
)
def test_simulator_errors_map_like_the_real_ones(kind: ErrorKind, status: int,
                                                 error_class: type[UpstreamError]) -> None:
    got_status, body = azure_format.error(kind)
    assert got_status == status
    assert type(ADAPTER.map_error(reply(status, body))) is error_class


def test_simulator_key_check_never_echoes_the_key() -> None:
    check = azure_format.check_api_key
    assert check({"api-key": "right"}, "right") is None
    wrong = check({"api-key": "wrong-key-4567"}, "right")
    assert wrong is not None and "4567" not in wrong
    assert check({}, "right") != wrong
