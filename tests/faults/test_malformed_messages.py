"""Raw malformed messages on any queue are discarded; every worker keeps serving."""

from __future__ import annotations

import json
import uuid

import redis

from broker.cluster import LocalCluster
from broker.schemas import JobStatus
from tests.support import chat_job, client_for


def _envelope(**override: object) -> dict[str, object]:
    base: dict[str, object] = {
        "body": "W1tdLCB7fSwge31d", "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": "aibroker.policy", "id": str(uuid.uuid4())},
        "properties": {"delivery_tag": str(uuid.uuid4()), "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": "policy"}}}
    return {**base, **override}


def _rot13() -> dict[str, object]:
    envelope = _envelope()
    envelope["properties"] = {**envelope["properties"], "body_encoding": "rot13"}  # type: ignore[dict-item]
    return envelope


CASES: list[bytes] = [
    b"null", b"[]", b'"a string"', b"12345", b"\x80\x04not json",
    json.dumps(_envelope(properties=None)).encode(),
    json.dumps(_envelope(body=12345)).encode(),
    json.dumps(_envelope(headers="a string")).encode(),
    json.dumps(_rot13()).encode(),
    b"[" * 100_000 + b"]" * 100_000,
]


def test_malformed_messages_on_every_queue_are_discarded(cluster: LocalCluster) -> None:
    raw = redis.Redis.from_url(cluster.redis_url)
    names = [n for n in cluster.procs.processes if n == "gateway" or n.startswith("model.")]
    pids = {name: cluster.procs.processes[name].pid for name in names}
    queues = ["policy", "route"] + [n for n in names if n.startswith("model.")]
    before = int(raw.get("aib:discarded") or 0)
    for queue in queues:
        for case in CASES:
            raw.lpush(queue, case)
    with client_for(cluster) as client:
        results = client.wait_all(client.submit_many(
            [chat_job("chat-small", "alpha", f"after garbage {i}") for i in range(20)]
            + [chat_job("chat-large", "alpha", f"large {i}") for i in range(5)]), timeout=120)
    assert all(r.status is JobStatus.SUCCEEDED for r in results)
    for name, pid in pids.items():
        process = cluster.procs.processes[name]
        assert process.pid == pid and process.poll() is None, f"{name} exited"
        assert "Unrecoverable error" not in cluster.procs.log(name)
    assert int(raw.get("aib:discarded") or 0) - before >= len(CASES) * len(queues) // 2
