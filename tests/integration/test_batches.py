"""Batches end to end: the CLI and client.batches on real Redis, workers and upstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from broker import jobstore as js
from broker import keys, tenant_keys
from broker.cluster import LocalCluster
from broker.errors import JobNotFound
from broker.ledger import read_usage
from broker.schemas import BatchStatus, JobStatus
from tests.support import KEYS, chat_job, client_for

LINES = 1000


def request(custom_id: str, model: str, text: str, **body: Any) -> dict[str, Any]:
    """One OpenAI Batch API chat line."""
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "max_tokens": 12,
                     "messages": [{"role": "user", "content": text}], **body}}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """Lines (objects or raw text) as a JSONL file."""
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines), encoding="utf-8")
    return path


def aibroker(cluster: LocalCluster, *args: str, check: bool = True,
             tenant: str = "alpha") -> subprocess.CompletedProcess[str]:
    """Run the CLI against the cluster with a tenant's key."""
    env = {**os.environ, **cluster.env, "AIBROKER_API_KEY": KEYS[tenant], "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "broker.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=check)


@contextmanager
def upstream_latency(cluster: LocalCluster, latency: str) -> Iterator[None]:
    """Slow the simulated provider down for a while (to catch a batch mid-way)."""
    def patch(value: str) -> None:
        call = urllib.request.Request(f"{cluster.upstreams['upstream']}/_sim/config",
                                      data=json.dumps({"latency": value}).encode(),
                                      method="PATCH")
        with urllib.request.urlopen(call, timeout=10):
            pass

    patch(latency)
    try:
        yield
    finally:
        patch("20")


def upstream_texts(cluster: LocalCluster) -> Counter[str]:
    """How often each prompt reached the provider (its log keeps the newest 10,000)."""
    return Counter(entry["text"] for entry in cluster.upstream_requests()["requests"])


def test_batch_over_two_models_end_to_end(cluster: LocalCluster, tmp_path: Path) -> None:
    lines = [request(f"req-{i}", "chat-small" if i % 3 else "chat-large", f"line {i} e2e")
             for i in range(LINES)]
    # Five lines the policy stage refuses (over alpha's 500 input tokens): they end failed.
    for i in range(0, 50, 10):
        lines[i]["body"]["messages"][0]["content"] = "word " * 800
    source = write_jsonl(tmp_path / "batch.jsonl", lines)
    submitted = aibroker(cluster, "batch", "submit", str(source), "--wait", "--format", "json",
                         "--metadata", "team=search")
    batch = json.loads(submitted.stdout)
    assert batch["status"] == "completed", submitted.stderr
    assert "jobs/s" in submitted.stderr and "failed" in submitted.stderr  # the progress bar
    assert batch["request_counts"] == {"total": LINES, "completed": LINES - 5, "failed": 5}
    assert batch["by_status"] == {"succeeded": LINES - 5, "rejected": 5}
    assert batch["metadata"] == {"team": "search"}
    assert batch["completed_at"] >= batch["in_progress_at"] >= batch["created_at"]

    out, err = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    aibroker(cluster, "batch", "results", batch["id"], "-o", str(out), "--errors", str(err))
    outputs = [json.loads(line) for line in out.read_text().splitlines()]
    errors = [json.loads(line) for line in err.read_text().splitlines()]
    seen = Counter(line["custom_id"] for line in outputs + errors)
    assert seen == Counter(line["custom_id"] for line in lines)  # each exactly once
    assert {line["custom_id"] for line in errors} == {f"req-{i}" for i in range(0, 50, 10)}
    assert {line["error"]["code"] for line in errors} == {"input_too_large"}
    assert all(line["error"] is None and line["response"]["status_code"] == 200
               for line in outputs)

    line_usage = [sum(line["response"]["body"]["usage"][name] for line in outputs)
                  for name in ("prompt_tokens", "completion_tokens")]
    usage = batch["usage"]
    assert [usage["prompt_tokens"], usage["completion_tokens"]] == line_usage
    assert usage["requests"] == LINES - 5
    with client_for(cluster) as client:
        by_model = read_usage(client.redis, batch=batch["id"], by=("model",))
        by_hour = read_usage(client.redis, batch=batch["id"], by=("batch", "hour"))
    assert {row.group["model"] for row in by_model} == {"chat-small", "chat-large"}
    for rows in (by_model, by_hour):
        assert [sum(r.prompt_tokens for r in rows), sum(r.completion_tokens for r in rows)] == (
            line_usage)
        assert abs(sum(r.cost_usd for r in rows) - batch["cost_usd"]) < 1e-9
    shown = json.loads(aibroker(cluster, "usage", "--batch", batch["id"], "--by", "model",
                                "--format", "json").stdout)
    assert sum(row["total_tokens"] for row in shown) == sum(line_usage)
    listed = json.loads(aibroker(cluster, "batch", "list", "--format", "json").stdout)
    assert batch["id"] in [b["id"] for b in listed]
    assert aibroker(cluster, "batch", "list", "--format", "json", tenant="beta").stdout == "[]\n"


def test_bad_lines_refuse_the_batch_unless_skipped(cluster: LocalCluster, tmp_path: Path) -> None:
    lines: list[Any] = [request("a", "chat-small", "SKIP-SENTINEL a"), "not json",
                        request("a", "chat-small", "SKIP-SENTINEL dup"),
                        request("b", "chat-nope", "x"), {**request("c", "chat-small", "x"),
                                                         "url": "/v1/files"},
                        "   ", request("d", "chat-small", "SKIP-SENTINEL d")]
    source = write_jsonl(tmp_path / "bad.jsonl", lines)
    refused = aibroker(cluster, "batch", "submit", str(source), "--format", "json", check=False)
    batch = json.loads(refused.stdout)
    assert refused.returncode == 1
    assert batch["status"] == "failed" and batch["request_counts"]["total"] == 0
    assert [(e["line"], e["code"]) for e in batch["errors"]["data"]] == [
        (2, "invalid_json"), (3, "duplicate_custom_id"), (4, "unknown_model"),
        (5, "invalid_url"), (6, "blank_line")]
    table = aibroker(cluster, "batch", "submit", str(source), check=False).stdout
    assert "duplicate_custom_id" in table and "Refused lines (5)" in table

    skipped = json.loads(aibroker(cluster, "batch", "submit", str(source), "--skip-invalid",
                                  "--wait", "--format", "json").stdout)
    assert skipped["status"] == "completed"
    assert skipped["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    with client_for(cluster) as client:
        results = list(client.batches.results(skipped["id"]))
    assert sorted(line.data["custom_id"] for line in results if line.ok) == ["a", "d"]
    assert sorted((line.data["line"], line.data["error"]["code"]) for line in results
                  if not line.ok) == [(2, "invalid_json"), (3, "duplicate_custom_id"),
                                      (4, "unknown_model"), (5, "invalid_url"),
                                      (6, "blank_line")]
    # Each custom_id is in exactly one of the output and the errors file.
    named = Counter(line.data["custom_id"] for line in results if line.data["custom_id"])
    assert named == {"a": 1, "b": 1, "c": 1, "d": 1}
    texts = upstream_texts(cluster)
    # The refused batch ran nothing: each valid prompt reached upstream once, from the second.
    assert texts["SKIP-SENTINEL a"] == texts["SKIP-SENTINEL d"] == 1
    assert texts["SKIP-SENTINEL dup"] == 0


def test_cancel_mid_batch_stops_queued_jobs(cluster: LocalCluster) -> None:
    # Workers hold up to concurrency x batch_size jobs each; the rest are still queued.
    lines = [request(f"c{i}", "chat-large", f"CANCEL-{i:04d}") for i in range(800)]
    with upstream_latency(cluster, "200"), client_for(cluster) as client:
        batch = client.batches.create(lines, api_key=KEYS["alpha"])
        assert batch.status is BatchStatus.IN_PROGRESS
        while client.batches.retrieve(batch.id).done < 20:
            time.sleep(0.05)
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status in (BatchStatus.CANCELLING, BatchStatus.CANCELLED)
        ended = client.batches.wait(batch.id, timeout=120)
        results = list(client.batches.results(batch.id))
    assert ended.status is BatchStatus.CANCELLED
    assert ended.cancelled_at is not None and ended.cancelling_at is not None
    by_status = Counter(line.data["error"]["code"] if not line.ok else "ok" for line in results)
    assert by_status["cancelled"] >= 300 and by_status["ok"] >= 20
    assert sum(by_status.values()) == 800
    assert ended.request_counts.total == 800
    assert ended.request_counts.completed == by_status["ok"] == ended.by_status["succeeded"]
    assert ended.by_status["cancelled"] == by_status["cancelled"]
    texts = upstream_texts(cluster)
    for line in results:
        prompt = f"CANCEL-{int(line.data['custom_id'][1:]):04d}"
        assert texts[prompt] == (1 if line.ok else 0), line.data
    assert ended.usage.requests == by_status["ok"]  # in-flight jobs finished and were billed


def test_completion_window_expires_unfinished_jobs(cluster: LocalCluster) -> None:
    # More lines than the worker holds at once (concurrency x batch_size): the rest wait
    # in the queue past the window.
    lines = [request(f"w{i}", "chat-large", f"WINDOW-{i:04d}") for i in range(600)]
    with upstream_latency(cluster, "300"), client_for(cluster) as client:
        batch = client.batches.create(lines, api_key=KEYS["alpha"], completion_window="2s")
        ended = client.batches.wait(batch.id, timeout=120)
        results = list(client.batches.results(batch.id))
    assert ended.status is BatchStatus.EXPIRED and ended.expired_at is not None
    expired = [line for line in results if not line.ok]
    assert {line.data["error"]["code"] for line in expired} == {"deadline_exceeded"}
    assert ended.by_status["expired"] == len(expired) > 50
    assert ended.by_status["succeeded"] == len(results) - len(expired) > 0
    texts = upstream_texts(cluster)
    assert all(texts[f"WINDOW-{int(line.data['custom_id'][1:]):04d}"] == 0 for line in expired)


def test_same_idempotency_key_from_ten_threads_makes_one_job(cluster: LocalCluster) -> None:
    text = f"IDEMPOTENT-{time.time_ns()}"
    start = threading.Barrier(10)
    ids: list[str] = []

    def submit() -> None:
        with client_for(cluster) as client:
            start.wait()
            ids.append(client.submit(chat_job("chat-small", "alpha", text,
                                              idempotency_key="order-42")).id)

    threads = [threading.Thread(target=submit) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(ids) == 10 and len(set(ids)) == 1
    with client_for(cluster) as client:
        first = client.wait(ids[0], timeout=60)
        again = client.submit(chat_job("chat-small", "alpha", text, idempotency_key="order-42"))
        other_tenant = client.submit(chat_job("chat-small", "beta", text,
                                              idempotency_key="order-42"))
        assert client.wait(other_tenant.id, timeout=60).ok
    assert first.status is JobStatus.SUCCEEDED
    assert again.id == ids[0] and again.result(timeout=10) == first
    assert other_tenant.id != ids[0]  # keys are scoped by tenant key
    assert upstream_texts(cluster)[text] == 2  # once for alpha, once for beta


def test_resubmitting_a_batch_with_its_key_returns_it(cluster: LocalCluster) -> None:
    lines = [request(f"i{i}", "chat-small", f"IDEM-BATCH-{i}") for i in range(30)]
    made: list[str] = []

    def create() -> None:
        with client_for(cluster) as client:
            made.append(client.batches.create(lines, api_key=KEYS["alpha"],
                                              idempotency_key="nightly-2026-11-25").id)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(made) == 4 and len(set(made)) == 1
    with client_for(cluster) as client:
        ended = client.batches.wait(made[0], timeout=60)
    assert ended.request_counts.total == ended.request_counts.completed == 30
    texts = upstream_texts(cluster)
    assert all(texts[f"IDEM-BATCH-{i}"] == 1 for i in range(30))


def test_aged_out_results_read_as_expired_with_usage_kept(cluster: LocalCluster) -> None:
    lines = [request(f"t{i}", "chat-small", f"RETAIN-{i}") for i in range(3)]
    week_ago_ms = int((time.time() - 8 * 86400) * 1000)
    old_job = f"{week_ago_ms:012x}" + "0" * 20  # an id older than the result and payload TTLs
    with client_for(cluster) as client:
        batch = client.batches.wait(client.batches.create(lines, api_key=KEYS["alpha"]).id,
                                    timeout=60)
        before = read_usage(client.redis, batch=batch.id, by=("batch",))
        gone_job = js.batch_job_id(batch.id, 1)
        # What the result and payload TTLs do, done at once.
        client.redis.delete(keys.result(gone_job), keys.job(gone_job))
        assert client.status(gone_job) is JobStatus.EXPIRED
        assert client.status(old_job) is JobStatus.EXPIRED
        started = time.monotonic()
        waited = client.wait(gone_job, timeout=30)
        assert client.wait(old_job, timeout=30).status is JobStatus.EXPIRED
        assert time.monotonic() - started < 5
        results = {line.data["custom_id"]: line for line in client.batches.results(batch.id)}
        after = read_usage(client.redis, batch=batch.id, by=("batch",))
        with pytest.raises(JobNotFound):  # a fresh id that names nothing is not "expired"
            client.status(js.new_job_id())
        with pytest.raises(JobNotFound):
            client.wait(js.new_job_id(), timeout=5)
    assert waited.status is JobStatus.EXPIRED and waited.error is not None
    assert waited.error.code == "result_expired" and waited.batch_id == batch.id
    assert not results["t1"].ok and results["t1"].data["error"]["code"] == "result_expired"
    assert results["t0"].ok and results["t2"].ok
    assert [r.total_tokens for r in after] == [r.total_tokens for r in before]
    assert after[0].requests == 3


def test_usage_plot_is_a_real_png(cluster: LocalCluster, tmp_path: Path) -> None:
    import matplotlib.image

    target = tmp_path / "usage.png"
    shown = aibroker(cluster, "usage", "--plot", str(target), "--by", "model")
    assert "plot written" in shown.stdout
    raw = target.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(raw) > 20_000
    pixels = matplotlib.image.imread(str(target))
    assert pixels.shape[:2] == (700, 1000)
    assert float(pixels[..., :3].std()) > 0.05  # lines, labels and legend, not a blank canvas


def test_a_batch_belongs_to_its_tenant_across_key_rotation(cluster: LocalCluster) -> None:
    with client_for(cluster) as client:
        first_key = tenant_keys.issue(client.redis, "alpha")
        batch = client.batches.create([request("r0", "chat-small", "owned by alpha")],
                                      api_key=first_key)
        second_key, _ = tenant_keys.rotate(client.redis, "alpha", grace_s=0)
        seen = client.batches.retrieve(batch.id, api_key=second_key)
        listed = [b.id for b in client.batches.list(api_key=second_key, limit=50)]
        static_key_sees = client.batches.retrieve(batch.id, api_key=KEYS["alpha"]).id
        refused = []
        for key in (KEYS["beta"], first_key, "sk-no-such-key"):
            with pytest.raises(JobNotFound):
                client.batches.retrieve(batch.id, api_key=key)
            refused.append(batch.id in [b.id for b in client.batches.list(api_key=key)])
        client.batches.wait(batch.id, timeout=60, api_key=second_key)
    assert seen.id == static_key_sees == batch.id
    assert batch.id in listed
    assert refused == [False, False, False]
