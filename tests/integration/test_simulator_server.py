"""The simulated provider over real HTTP: started in-process on a free port, called with httpx."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.simulator import RunningSimulator, SimSettings, start
from broker.tokens import count_chat, count_inputs, count_text, encoding_name_for_model

MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What does a message broker do?"},
]
Scenario = Callable[[RunningSimulator, httpx.AsyncClient], Awaitable[None]]


def simulate(scenario: Scenario, **knobs: Any) -> None:
    """Run `scenario` against a fresh simulator started with `knobs`."""

    async def main() -> None:
        running = await start(SimSettings(port=0, **knobs))
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
                await scenario(running, client)
        finally:
            await running.stop()

    asyncio.run(main())


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": MESSAGES, **extra}


async def chat(client: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    return await client.post("/v1/chat/completions", json=chat_body(**extra))


async def script(client: httpx.AsyncClient, *outcomes: str) -> None:
    response = await client.post("/_sim/script", json=list(outcomes))
    assert response.status_code == 200
    assert response.json()["script_remaining"] == len(outcomes)


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/_sim/stats")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_chat_completion_shape_and_usage() -> None:
    async def scenario(running: RunningSimulator, client: httpx.AsyncClient) -> None:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", running.url)
        assert running.port > 0
        response = await chat(client)
        assert response.status_code == 200
        assert response.headers["x-request-id"].startswith("req_")
        assert int(response.headers["openai-processing-ms"]) >= 0
        assert "x-ratelimit-limit-requests" not in response.headers
        body = response.json()
        assert body["id"].startswith("chatcmpl-")
        assert body["object"] == "chat.completion"
        assert body["model"] == MODEL
        assert abs(body["created"] - time.time()) < 60
        [choice] = body["choices"]
        assert choice["finish_reason"] == "stop"
        assert choice["message"]["role"] == "assistant"
        prompt = count_chat(MESSAGES, encoding_name_for_model(MODEL))
        assert body["usage"] == {"prompt_tokens": prompt, "completion_tokens": 12,
                                 "total_tokens": prompt + 12}
        assert count_text(choice["message"]["content"], encoding_name_for_model(MODEL)) == 12

    simulate(scenario, completion_tokens=12)


def test_max_tokens_caps_the_reply() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        for field in ("max_tokens", "max_completion_tokens"):
            body = (await chat(client, **{field: 4})).json()
            assert body["choices"][0]["finish_reason"] == "length"
            assert body["usage"]["completion_tokens"] == 4
        body = (await chat(client, max_tokens=500)).json()
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["usage"]["completion_tokens"] == 16

    simulate(scenario)


def test_embeddings() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        inputs = ["one input", "and another one"]
        request = {"model": "text-embedding-3-small", "input": inputs}
        body = (await client.post("/v1/embeddings", json=request)).json()
        assert body["object"] == "list"
        shapes = [(item["object"], item["index"], len(item["embedding"])) for item in body["data"]]
        assert shapes == [("embedding", 0, 8), ("embedding", 1, 8)]
        prompt = count_inputs(inputs, "cl100k_base")
        assert body["usage"] == {"prompt_tokens": prompt, "total_tokens": prompt}
        again = (await client.post("/v1/embeddings", json={**request, "dimensions": 16})).json()
        assert len(again["data"][0]["embedding"]) == 16
        same = (await client.post("/v1/embeddings", json=request)).json()
        assert same["data"] == body["data"]

    simulate(scenario)


def test_bad_requests_get_400() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        empty = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": []})
        assert empty.status_code == 400
        assert empty.json()["error"]["type"] == "invalid_request_error"
        assert empty.json()["error"]["param"] == "messages"
        no_model = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
        assert no_model.json()["error"]["param"] == "model"
        garbage = await client.post("/v1/chat/completions", content=b"{not json")
        assert garbage.status_code == 400
        assert garbage.json()["error"]["type"] == "invalid_request_error"
        # Invalid requests never consume the script.
        await script(client, "500")
        await client.post("/v1/chat/completions", content=b"[]")
        assert (await chat(client)).status_code == 500
        unknown = await client.get("/v1/nothing-here")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/nothing-here)"

    simulate(scenario)


def test_scripted_failures() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        await script(client, "429", "500", "503", "malformed", "ok")
        limited = await chat(client)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "3"
        assert limited.headers["retry-after-ms"] == "2500"
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert set(limited.json()["error"]) == {"message", "type", "param", "code"}
        failed = await chat(client)
        assert failed.status_code == 500
        assert failed.json()["error"]["type"] == "server_error"
        unavailable = await chat(client)
        assert unavailable.status_code == 503
        assert "retry-after" not in unavailable.headers
        malformed = await chat(client)
        assert malformed.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(malformed.content)
        assert (await chat(client)).status_code == 200
        assert (await stats(client))["script_remaining"] == 0
        queued = await client.post("/_sim/script", json={"outcomes": ["503"], "append": True})
        assert queued.json() == {"script_remaining": 1, "script": ["503"]}
        appended = await client.post("/_sim/script", json={"outcomes": ["ok"], "append": True})
        assert appended.json()["script"] == ["503", "ok"]
        for bad in (["teapot"], {"outcomes": "429"}, "429"):
            assert (await client.post("/_sim/script", json=bad)).status_code == 400
        assert [(await chat(client)).status_code for _ in range(3)] == [503, 200, 200]

    simulate(scenario, retry_after_s=2.5)


def test_timeout_holds_the_request() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        await script(client, "timeout")
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", json=chat_body(), timeout=0.3)
        for _ in range(250):  # the server notices the hang-up and frees the slot
            counters = await stats(client)
            if not counters["in_flight"]:
                break
            await asyncio.sleep(0.02)
        assert counters["in_flight"] == 0
        [held] = (await client.get("/_sim/requests")).json()["requests"]
        assert (held["status"], held["outcome"], held["model"]) == (499, "timeout", MODEL)
        assert counters["by_outcome"] == {"timeout": 1}
        assert counters["usage_total"]["requests"] == 0
        await client.patch("/_sim/config", json={"timeout_hold_s": 0.1})
        await script(client, "timeout")
        assert (await chat(client)).status_code == 504  # a patient client sees the gateway give up

    simulate(scenario)


def test_max_concurrency_sheds_load_with_429() -> None:
    limit = 4

    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        responses = await asyncio.gather(*(chat(client) for _ in range(limit + 5)))
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200] * limit + [429] * 5
        for response in responses:
            if response.status_code == 429:
                assert response.headers["retry-after"] == "1"
                assert response.json()["error"]["type"] == "requests"
        counters = await stats(client)
        assert counters["peak_in_flight"] == limit
        assert counters["by_outcome"]["capacity"] == 5

    simulate(scenario, max_concurrency=limit, latency="200")


def test_peak_concurrency_is_recorded() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        responses = await asyncio.gather(*(chat(client) for _ in range(7)))
        assert all(response.status_code == 200 for response in responses)
        counters = await stats(client)
        assert counters["peak_in_flight"] == 7
        assert counters["in_flight"] == 0

    simulate(scenario, latency="200")


def test_stats_usage_matches_served_responses() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        await script(client, "malformed", "429", "ok", "500")
        expected: dict[str, list[int]] = {}
        for index in range(40):
            model = ("gpt-4o-mini", "gpt-3.5-turbo")[index % 2]
            extra = {"max_tokens": 1 + index % 7} if index % 3 else {}
            response = await client.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "x" * index}],
                      **extra},
            )
            if response.status_code == 200:
                try:
                    usage = response.json()["usage"]
                except json.JSONDecodeError:
                    continue
                sums = expected.setdefault(model, [0, 0, 0])
                sums[0] += usage["prompt_tokens"]
                sums[1] += usage["completion_tokens"]
                sums[2] += 1
        counters = await stats(client)
        assert counters["by_status"]["200"] > sum(sums[2] for sums in expected.values())
        assert {model: [u["prompt_tokens"], u["completion_tokens"], u["requests"]]
                for model, u in counters["usage"].items()} == expected
        assert counters["requests_total"] == 40

    simulate(scenario, seed=5, rate_429=0.2, rate_malformed=0.1)


def test_api_key_required() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        missing = await chat(client)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        wrong_key = {"Authorization": "Bearer sk-nope-1234"}
        wrong = await client.post("/v1/chat/completions", json=chat_body(), headers=wrong_key)
        assert wrong.status_code == 401
        assert "sk-nope-1234" not in wrong.text
        good = {"Authorization": "Bearer sk-test-key"}
        allowed = await client.post("/v1/chat/completions", json=chat_body(), headers=good)
        assert allowed.status_code == 200
        assert (await client.get("/v1/models")).status_code == 401
        models = await client.get("/v1/models", headers=good)
        assert MODEL in [item["id"] for item in models.json()["data"]]
        assert (await stats(client))["usage_total"]["requests"] == 1

    simulate(scenario, require_api_key=True, api_key="sk-test-key")


def test_patch_config_changes_behaviour() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        assert (await chat(client)).status_code == 200
        patched = await client.patch("/_sim/config", json={"rate_500": 1.0, "completion_tokens": 3})
        assert patched.status_code == 200
        assert patched.json()["config"]["rate_500"] == 1.0
        assert (await chat(client)).status_code == 500
        await client.patch("/_sim/config", json={"rate_500": 0})
        assert (await chat(client)).json()["usage"]["completion_tokens"] == 3
        for bad in ({"rate_429": 2}, {"no_such_knob": 1}, {"latency": "soon"}, {"port": 1}, [1]):
            rejected = await client.patch("/_sim/config", json=bad)
            assert rejected.status_code == 400, bad
        config = (await client.get("/_sim/config")).json()["config"]
        assert config["rate_429"] == 0
        assert config["completion_tokens"] == 3

    simulate(scenario)


def test_latency_applies_to_errors_too() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        await script(client, "500")
        for expected in (500, 200):
            began = time.perf_counter()
            assert (await chat(client)).status_code == expected
            assert time.perf_counter() - began >= 0.15

    simulate(scenario, latency="150")


def test_seeded_runs_replay_after_reset() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        first = [(await chat(client)).status_code for _ in range(30)]
        assert {429, 500, 200} <= set(first)
        reset = await client.post("/_sim/reset")
        assert reset.json() == {"status": "reset"}
        assert [(await chat(client)).status_code for _ in range(30)] == first

    simulate(scenario, seed=11, rate_429=0.25, rate_500=0.25)


def test_request_log_and_reset() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        secret = "my card is 4111 1111 1111 1111"
        await chat(client, messages=[{"role": "user", "content": secret}])
        await client.post("/v1/chat/completions", content=b"oops")
        await script(client, "503", "503")
        log = (await client.get("/_sim/requests")).json()
        assert log["count"] == 2
        first, second = log["requests"]
        assert (first["status"], first["model"], first["text"]) == (200, MODEL, secret)
        assert first["body"]["messages"][0]["content"] == secret
        assert first["completion_tokens"] == 16
        assert first["prompt_tokens"] == count_chat(first["body"]["messages"], "o200k_base")
        assert (second["status"], second["outcome"], second["body"]) == (400, "invalid", "oops")
        assert second["model"] is None
        newest = (await client.get("/_sim/requests", params={"limit": 1})).json()
        assert newest["requests"] == [second]
        assert (await client.get("/_sim/requests", params={"limit": "x"})).status_code == 400
        await client.post("/_sim/reset")
        counters = await stats(client)
        assert counters["requests_total"] == 0
        assert counters["usage"] == {}
        assert counters["script_remaining"] == 0
        assert (await client.get("/_sim/requests")).json()["count"] == 0
        assert (await client.get("/_sim/health")).json()["status"] == "ok"

    simulate(scenario)


def test_rate_limit_headers() -> None:
    async def scenario(_running: RunningSimulator, client: httpx.AsyncClient) -> None:
        first = await chat(client)
        prompt_and_reply = first.json()["usage"]["total_tokens"]
        second = await chat(client)
        assert second.headers["x-ratelimit-limit-requests"] == "60"
        assert second.headers["x-ratelimit-remaining-requests"] == "58"
        assert second.headers["x-ratelimit-limit-tokens"] == "1000"
        remaining = 1000 - 2 * prompt_and_reply
        assert second.headers["x-ratelimit-remaining-tokens"] == str(remaining)
        assert re.fullmatch(r"[\d.]+m?s", second.headers["x-ratelimit-reset-requests"])

    simulate(scenario, rpm_limit=60, tpm_limit=1000)


def test_command_line_prints_its_address_and_stops_on_sigterm() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "broker.cli.main", "upstream", "--port", "0", "--latency", "5"]
    with subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.fullmatch(r"aibroker upstream listening on (http://[\d.]+:\d+)\n", line)
            assert match, line
            health = httpx.get(f"{match.group(1)}/_sim/health", timeout=5)
            assert health.json()["status"] == "ok"
            reply = httpx.post(f"{match.group(1)}/v1/chat/completions", json=chat_body(), timeout=5)
            assert reply.status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert proc.stdout.read() == ""  # exactly one line, nothing per request
        finally:
            if proc.poll() is None:
                proc.kill()
