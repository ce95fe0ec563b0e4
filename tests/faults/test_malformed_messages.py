"""Raw malformed messages on any queue are quarantined; every worker keeps serving."""

from __future__ import annotations

import base64
import json
import time
import uuid
import zlib
from collections.abc import Callable

import redis

from broker import keys
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


def _discarded(raw: redis.Redis) -> int:
    return int(raw.get(keys.discarded_messages()) or 0)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _worker_names(cluster: LocalCluster) -> list[str]:
    return [n for n in cluster.procs.processes if n == "gateway" or n.startswith("model.")]


def _all_succeed(cluster: LocalCluster, count: int) -> None:
    with client_for(cluster) as client:
        results = client.wait_all(client.submit_many(
            [chat_job("chat-small", "alpha", f"after garbage {i}") for i in range(count)]
            + [chat_job("chat-large", "alpha", f"large {i}") for i in range(5)]), timeout=120)
    assert all(r.status is JobStatus.SUCCEEDED for r in results)


def _assert_alive(cluster: LocalCluster, pids: dict[str, int]) -> None:
    for name, pid in pids.items():
        process = cluster.procs.processes[name]
        assert process.pid == pid and process.poll() is None, f"{name} exited"
        assert "Unrecoverable error" not in cluster.procs.log(name)


def _quarantined(raw: redis.Redis, count: int) -> list[dict[str, object]]:
    return [json.loads(e) for e in raw.lrange(keys.quarantine(), 0, count - 1)]


def test_malformed_messages_on_every_queue_are_quarantined(cluster: LocalCluster) -> None:
    raw = redis.Redis.from_url(cluster.redis_url)
    names = _worker_names(cluster)
    pids = {name: cluster.procs.processes[name].pid for name in names}
    queues = ["policy", "route"] + [n for n in names if n.startswith("model.")]
    before = _discarded(raw)
    for queue in queues:
        for case in CASES:
            raw.lpush(queue, case)
    pushed = len(CASES) * len(queues)
    _wait_for(lambda: _discarded(raw) - before >= pushed, "every message discarded")
    _all_succeed(cluster, 20)
    _assert_alive(cluster, pids)
    assert _discarded(raw) - before == pushed  # one count per message, none twice
    entries = _quarantined(raw, pushed)
    assert {e["queue"] for e in entries} == set(queues)
    reasons = {str(e["reason"]) for e in entries}
    assert reasons == {"NotAnEnvelope", "JSONDecodeError", "BadProperties", "BadBody",
                       "BadHeaders", "AttributeError", "RecursionError"}
    stored = {base64.b64decode(str(e["raw_b64"])) for e in entries}
    assert all(len(kept) <= keys.QUARANTINE_ENTRY_BYTES for kept in stored)
    assert b"null" in stored and (b"[" * keys.QUARANTINE_ENTRY_BYTES) in stored
    deep = [e for e in entries if e["reason"] == "RecursionError"]
    assert deep and all(e["truncated"] and e["size"] == 200_000 for e in deep)


def test_the_quarantine_list_is_capped(cluster: LocalCluster) -> None:
    raw = redis.Redis.from_url(cluster.redis_url)
    before = _discarded(raw)
    pushed = keys.QUARANTINE_CAP + 10
    with raw.pipeline(transaction=False) as pipe:
        for i in range(pushed):
            pipe.lpush("route", f'"bad {i}"')
        pipe.execute()
    _wait_for(lambda: _discarded(raw) - before >= pushed, "every message discarded")
    assert _discarded(raw) - before == pushed
    assert raw.llen(keys.quarantine()) == keys.QUARANTINE_CAP
    newest = _quarantined(raw, 1)[0]
    assert newest["queue"] == "route" and newest["reason"] == "NotAnEnvelope"


def _zlib_bomb(inflated_mib: int) -> bytes:
    packer = zlib.compressobj(6)
    chunk = bytes(1 << 20)
    return b"".join([packer.compress(chunk) for _ in range(inflated_mib)] + [packer.flush()])


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def test_a_zlib_bomb_is_quarantined_without_inflating(cluster: LocalCluster) -> None:
    raw = redis.Redis.from_url(cluster.redis_url)
    gateway = cluster.procs.processes["gateway"].pid
    _all_succeed(cluster, 5)  # the gateway's working set before the bomb
    peak_before = _peak_rss_mb(gateway)
    before = _discarded(raw)
    bomb = _zlib_bomb(512)
    headers = {"task": "aibroker.policy", "id": str(uuid.uuid4()),
               "compression": "application/x-gzip"}
    raw.lpush("policy", json.dumps(_envelope(
        headers=headers, body=base64.b64encode(bomb).decode("ascii"))))
    _wait_for(lambda: raw.llen("policy") == 0, "the bomb read")
    _wait_for(lambda: _discarded(raw) - before >= 1 or _peak_rss_mb(gateway) >= 300,
              "the bomb discarded")
    assert _peak_rss_mb(gateway) < 300  # inflated, it would be 512 MiB
    assert _peak_rss_mb(gateway) - peak_before < 40
    assert _discarded(raw) - before == 1
    assert _quarantined(raw, 1)[0]["reason"] == "Compressed"
    _all_succeed(cluster, 5)
    _assert_alive(cluster, {"gateway": gateway})


def test_envelopes_with_ill_formed_celery_headers_do_not_stop_workers(
        cluster: LocalCluster) -> None:
    raw = redis.Redis.from_url(cluster.redis_url)
    names = _worker_names(cluster)
    pids = {name: cluster.procs.processes[name].pid for name in names}
    wrong_shape = base64.b64encode(b'[1, "two"]').decode("ascii")
    cases = [_envelope(headers={}), _envelope(headers={}, body=wrong_shape),
             _envelope(headers={"task": 12345, "id": None}),
             _envelope(headers={"task": "aibroker.nonesuch", "id": str(uuid.uuid4())}),
             _envelope(headers={"task": "aibroker.policy", "id": str(uuid.uuid4())},
                       body=wrong_shape)]
    cases.append(_envelope(headers={"task": ["aibroker.policy"], "id": str(uuid.uuid4())}))
    cases.append(_envelope(headers={"task": "aibroker.policy", "id": 7}))
    queues = ["policy", "route"] + [n for n in names if n.startswith("model.")]
    before = _discarded(raw)
    for queue in queues:
        for case in cases:
            raw.lpush(queue, json.dumps(case))
    pushed = len(cases) * len(queues)
    _wait_for(lambda: _discarded(raw) - before >= pushed, "every message discarded")
    _all_succeed(cluster, 10)
    _assert_alive(cluster, pids)
    assert _discarded(raw) - before == pushed
    assert all(raw.llen(q) == 0 for q in queues)
    reasons = {str(e["reason"]) for e in _quarantined(raw, pushed)}
    assert reasons == {"NotABrokerTask", "BadTaskId", "ValueError"}
    # Celery's own handling of an unknown task logs the message body; it is never reached.
    assert all("Received unregistered task" not in cluster.procs.log(n) for n in names)
