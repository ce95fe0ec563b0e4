"""Bad input ends with a clear error and leaves every other job alone."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from broker.catalog import load_catalog
from broker.cluster import LocalCluster
from broker.errors import ConfigError, ValidationError
from broker.schemas import JobStatus
from tests.support import KEYS, chat_job, client_for


def test_empty_messages_raise_before_anything_is_queued(cluster: LocalCluster) -> None:
    with client_for(cluster) as client:
        queued_before = client.redis.dbsize()
        with pytest.raises(ValidationError, match="messages"):
            client.submit_many([chat_job("chat-small", "alpha"),
                                {"model": "chat-small", "api_key": KEYS["alpha"], "messages": []}])
        assert client.redis.dbsize() == queued_before


@pytest.mark.parametrize(("job", "code"), [
    (chat_job("no-such-model", "alpha"), "unknown_model"),
    (chat_job("chat-small", "sk-not-a-tenant"), "unauthenticated"),
    (chat_job("chat-large", "beta"), "model_not_allowed"),
    (chat_job("chat-small", "alpha", "word " * 800), "input_too_large"),
])
def test_policy_rejects_with_reason_code(cluster: LocalCluster, job: dict[str, object],
                                         code: str) -> None:
    with client_for(cluster) as client:
        bad, good = client.submit_many([job, chat_job("chat-small", "alpha")])
        rejected, succeeded = bad.result(timeout=60), good.result(timeout=60)
    assert rejected.status is JobStatus.REJECTED
    assert rejected.error is not None and rejected.error.code == code
    assert rejected.error.message
    assert rejected.usage.total_tokens == 0
    assert succeeded.status is JobStatus.SUCCEEDED


def test_unknown_fields_and_wrong_types_are_refused() -> None:
    from broker.client import _validate

    with pytest.raises(ValidationError, match="temprature"):
        _validate({**chat_job("chat-small", "alpha"), "temprature": 0.2})
    with pytest.raises(ValidationError, match="max_tokens"):
        _validate({**chat_job("chat-small", "alpha"), "max_tokens": "many"})


def test_non_json_messages_on_a_queue_do_not_stop_the_pipeline(cluster: LocalCluster) -> None:
    raw = redis.Redis.from_url(cluster.redis_url)
    # Not even an envelope, then a proper envelope whose body is pickle, then a JSON
    # envelope whose arguments have the wrong shape.
    raw.lpush("policy", b"\x80\x04this is not json")
    envelope = {"body": "gASVCAAAAAAAAACMBHBpY2uULg==", "content-encoding": "binary",
                "content-type": "application/x-python-serialize", "headers": {
                    "task": "aibroker.policy", "id": str(uuid.uuid4())},
                "properties": {"delivery_tag": str(uuid.uuid4()), "body_encoding": "base64",
                               "delivery_info": {"exchange": "", "routing_key": "policy"}}}
    raw.lpush("policy", json.dumps(envelope))
    with client_for(cluster) as client:
        results = client.wait_all(client.submit_many(
            [chat_job("chat-small", "alpha", f"after garbage {i}") for i in range(20)]), timeout=60)
    assert all(r.status is JobStatus.SUCCEEDED for r in results)
    assert int(raw.get("aib:discarded") or 0) >= 1
    log = cluster.procs.log("gateway")
    assert "not a JSON envelope" in log
    assert "ContentDisallowed" in log or "disallowed" in log.lower()
    assert "Unrecoverable error" not in log


def test_invalid_config_names_file_field_and_problem(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "bad.yaml"  # type: ignore[operator]
    path.write_text("models:\n  m:\n    deployments:\n      - name: d1\n        base_url: x\n"
                    "        model: gpt\n        capacity: {concurrency: -3}\n")
    with pytest.raises(ConfigError) as caught:
        load_catalog(path)
    message = caught.value.message
    assert str(path) in message
    assert "models.m.deployments.0.capacity.concurrency" in message
    assert "greater than or equal to 1" in message


def test_config_with_typo_and_missing_file(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "typo.yaml"  # type: ignore[operator]
    path.write_text("modles: {}\n")
    with pytest.raises(ConfigError, match="modles"):
        load_catalog(path)
    with pytest.raises(ConfigError, match="not found"):
        load_catalog(tmp_path / "absent.yaml")  # type: ignore[operator]
