"""Streaming validation of OpenAI Batch JSONL: every bad line named, memory kept flat."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from broker.batch_files import (
    BadLine,
    BatchFile,
    BatchLine,
    CustomIdSet,
    bad_line,
    result_line,
    spool,
)
from broker.batches import parse_window
from broker.errors import ValidationError
from broker.schemas import ErrorInfo, JobResult, JobStatus, Usage

MODELS = {"chat-small", "embed"}


def _line(custom_id: Any = "r", method: str = "POST", url: str = "/v1/chat/completions",
          body: Any = None, **extra: Any) -> str:
    if body is None:
        body = {"model": "chat-small", "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({"custom_id": custom_id, "method": method, "url": url, "body": body,
                       **extra})


def _read(tmp_path: Path, lines: list[str]) -> tuple[BatchFile, list[BatchLine | BadLine]]:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reader = BatchFile(path, MODELS)
    return reader, list(reader)


def test_each_kind_of_bad_line_is_named_with_its_line_number(tmp_path: Path) -> None:
    lines = [
        _line("ok-1"),                                                          # 1
        "{not json",                                                            # 2
        _line("ok-1"),                                                          # 3 duplicate
        "",                                                                     # 4 blank
        _line("m", method="GET"),                                               # 5
        _line("u", url="/v1/images/generations"),                               # 6
        _line("b", body={"model": "chat-small", "messages": []}),               # 7
        _line("k", body={"model": "chat-small", "messages": [
            {"role": "user", "content": "x"}], "temperature": 9}),              # 8
        _line("x", body={"model": "gpt-9", "messages": [
            {"role": "user", "content": "x"}]}),                                # 9
        _line("e", url="/v1/embeddings"),                                       # 10 wrong kind
        _line(None),                                                            # 11
        "[1, 2]",                                                               # 12
        _line("f", extra_field=1),                                              # 13
        _line("s", body="not an object"),                                       # 14
        _line("ok-2", url="/v1/embeddings", body={"model": "embed", "input": "a"}),  # 15
    ]
    reader, items = _read(tmp_path, lines)
    bad = {item.line: item for item in items if isinstance(item, BadLine)}
    assert {line: item.code for line, item in bad.items()} == {
        2: "invalid_json", 3: "duplicate_custom_id", 4: "blank_line", 5: "invalid_method",
        6: "invalid_url", 7: "invalid_body", 8: "invalid_body", 9: "unknown_model",
        10: "invalid_body", 11: "invalid_custom_id", 12: "invalid_json", 13: "invalid_line",
        14: "invalid_body"}
    assert "temperature" in bad[8].message
    assert "gpt-9" in bad[9].message
    assert "`input`" in bad[10].message
    assert bad[3].custom_id is None  # ok-1 is line 1's; the repeat names it in its message
    assert "'ok-1'" in bad[3].message
    assert bad[4].message == "the line is blank"
    good = [item for item in items if isinstance(item, BatchLine)]
    assert [(g.line, g.custom_id, g.url) for g in good] == [
        (1, "ok-1", "/v1/chat/completions"), (15, "ok-2", "/v1/embeddings")]
    assert json.loads(good[1].body_json) == {"model": "embed", "input": "a"}
    assert (reader.lines, reader.valid, reader.invalid) == (15, 2, 13)
    error = bad[5].to_error()
    assert (error.line, error.code, error.custom_id) == (5, "invalid_method", "m")


def test_lines_are_read_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(_line(f"r{i}") + "\n" for i in range(5000)), encoding="utf-8")
    reader = BatchFile(path, MODELS)
    first = next(iter(reader))
    assert isinstance(first, BatchLine)
    assert reader.lines == 1
    assert reader.bytes_read < path.stat().st_size / 1000


def test_memory_stays_flat_over_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    count = 20_000
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            handle.write(_line(f"request-{i:07d}", body={"model": "chat-small", "messages": [
                {"role": "user", "content": f"question {i} " + "word " * 30}]}) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        reader = BatchFile(path, MODELS)
        valid = sum(1 for item in reader if isinstance(item, BatchLine))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert valid == count
    # The custom_id table (16 bytes a slot) is all that grows; the file is never held.
    assert peak < size / 4, (peak, size)
    assert reader.custom_ids.nbytes <= 48 * count


def test_hash_collisions_are_told_apart_from_duplicates() -> None:
    stored: dict[int, str] = {}

    def recall(where: int) -> str | None:
        return stored.get(where)

    ids = CustomIdSet(recall, hasher=lambda _text: 42, capacity=4)  # every id collides
    for where, custom_id in enumerate(["a", "b", "c", "d", "e"]):
        stored[where] = custom_id
        assert ids.add(custom_id, where) is None
    assert ids.add("c", 99) == 2
    assert ids.add("f", 100) is None
    assert ids.collisions > 0
    assert ids.size == 6


def test_table_grows_and_keeps_every_id() -> None:
    ids = CustomIdSet(lambda where: f"id-{where}", capacity=4)
    for i in range(10_000):
        assert ids.add(f"id-{i}", i) is None
    assert all(ids.add(f"id-{i}", 10_000 + i) == i for i in range(0, 10_000, 97))
    assert ids.size == 10_000
    assert ids.nbytes == 16 * 16_384


def test_lines_in_memory_are_spooled_and_validated_alike(tmp_path: Path) -> None:
    lines: list[Any] = [json.loads(_line("a")), _line("b"), _line("c").encode(), "oops"]
    path = spool(iter(lines), directory=str(tmp_path))
    try:
        items = list(BatchFile(path, MODELS))
    finally:
        path.unlink()
    assert [type(item).__name__ for item in items] == ["BatchLine"] * 3 + ["BadLine"]
    assert items[3].line == 4


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86_400), ("90m", 5400), ("7d", 604_800),
                                               ("30s", 30)])
def test_completion_window_parses(text: str, seconds: int) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "0h", "1w", "h24"])
def test_bad_completion_window_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_window(text)


def test_output_and_error_lines_have_the_openai_shape() -> None:
    ok = JobResult(id="batch_x-0", status=JobStatus.SUCCEEDED, model="m", kind="chat",
                   response={"id": "chatcmpl-1", "choices": []},
                   usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
                   created_at=1.0, finished_at=2.0)
    line = result_line("row-1", ok)
    assert line.ok
    assert line.data == {"id": "batch_x-0", "custom_id": "row-1", "error": None, "response": {
        "status_code": 200, "request_id": "batch_x-0", "body": {
            "id": "chatcmpl-1", "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}}}
    failed = ok.model_copy(update={"status": JobStatus.CANCELLED, "response": None,
                                   "error": ErrorInfo(code="cancelled", message="stop")})
    assert result_line("row-2", failed).data == {
        "id": "batch_x-0", "custom_id": "row-2", "response": None,
        "error": {"code": "cancelled", "message": "stop"}}
    refused = bad_line(BadLine(7, "invalid_url", "no", "row-3").to_error())
    assert not refused.ok and json.loads(refused.to_json()) == {
        "id": None, "custom_id": "row-3", "response": None, "line": 7,
        "error": {"code": "invalid_url", "message": "no"}}
