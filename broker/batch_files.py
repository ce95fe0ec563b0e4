"""OpenAI Batch API files: streaming validation of the input, and the output/errors lines.

Each line must be an object with `custom_id` (unique in the file), `method` POST, `url`
/v1/chat/completions or /v1/embeddings and a `body` the broker accepts for a model of the
catalog. A bad line is reported with its 1-based line number and one reason. Only the
custom_ids seen so far are remembered, as 8-byte hashes in a flat table (16 bytes a slot
with the line's byte offset): a hash match is checked against the earlier line itself, read
back from the file, so a hash collision is never reported as a duplicate.
"""

from __future__ import annotations

import json
import os
import tempfile
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError as PydanticValidationError

from broker.schemas import BatchLineError, JobBody, JobResult

URL_KINDS = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings"}
LINE_FIELDS = frozenset({"custom_id", "method", "url", "body"})
MAX_CUSTOM_ID = 512
_EMPTY = 0
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class BatchLine:
    """A valid request line: its custom_id and the normalised body to store."""

    line: int
    custom_id: str
    url: str
    body_json: str


@dataclass(frozen=True, slots=True)
class BadLine:
    """A refused line: where, why (a stable code) and its custom_id when it had one."""

    line: int
    code: str
    message: str
    custom_id: str | None = None

    def to_error(self) -> BatchLineError:
        """The line as an entry of the batch's `errors`."""
        return BatchLineError(code=self.code, message=self.message, line=self.line,
                              custom_id=self.custom_id)


@dataclass(frozen=True, slots=True)
class ResultLine:
    """One line of a batch's output file (`ok`) or errors file, in OpenAI's format."""

    ok: bool
    data: dict[str, Any]

    def to_json(self) -> str:
        """The line as compact JSON (no newline)."""
        return json.dumps(self.data, separators=(",", ":"))


def result_line(custom_id: str | None, result: JobResult) -> ResultLine:
    """The output or errors line of one ended job."""
    if result.ok and result.response is not None:
        body = dict(result.response)
        body.setdefault("usage", result.usage.model_dump(exclude={"estimated"}))
        return ResultLine(True, {
            "id": result.id, "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": result.id, "body": body},
            "error": None})
    error = result.error
    return ResultLine(False, {
        "id": result.id, "custom_id": custom_id, "response": None,
        "error": {"code": error.code if error else result.status.value,
                  "message": error.message if error else f"the job ended {result.status}"}})


def bad_line(entry: BatchLineError) -> ResultLine:
    """The errors-file line of an input line that never became a job."""
    return ResultLine(False, {"id": None, "custom_id": entry.custom_id, "response": None,
                              "error": {"code": entry.code, "message": entry.message},
                              "line": entry.line})


def _default_hash(text: str) -> int:
    # Python's str hash is 64-bit and fast; its per-process salt does not matter because
    # the table lives and dies in one process.
    return hash(text) & _MASK64


class CustomIdSet:
    """custom_ids seen so far: open addressing over two flat arrays of 8-byte words.

    `recall(where)` returns the custom_id stored at a position (a byte offset); it is asked
    only when two hashes match, to tell a real duplicate from a collision.
    """

    def __init__(self, recall: Callable[[int], str | None],
                 hasher: Callable[[str], int] = _default_hash, capacity: int = 1 << 12) -> None:
        self._recall = recall
        self._hasher = hasher
        self._hashes = array("Q", [0]) * capacity
        self._places = array("Q", [0]) * capacity
        self._mask = capacity - 1
        self.size = 0
        self.collisions = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the table."""
        return (len(self._hashes) + len(self._places)) * 8

    def add(self, custom_id: str, where: int) -> int | None:
        """Remember a custom_id seen at `where`; the earlier position if it was seen before."""
        digest = self._hasher(custom_id) or 1  # 0 marks an empty slot
        slot = digest & self._mask
        while (found := self._hashes[slot]) != _EMPTY:
            if found == digest:
                earlier = self._places[slot]
                if self._recall(earlier) == custom_id:
                    return earlier
                self.collisions += 1
            slot = (slot + 1) & self._mask
        self._hashes[slot] = digest
        self._places[slot] = where
        self.size += 1
        if self.size * 4 > len(self._hashes) * 3:
            self._grow()
        return None

    def _grow(self) -> None:
        hashes, places = self._hashes, self._places
        capacity = len(hashes) * 2
        self._hashes = array("Q", [0]) * capacity
        self._places = array("Q", [0]) * capacity
        self._mask = capacity - 1
        for digest, place in zip(hashes, places, strict=True):
            if digest != _EMPTY:
                slot = digest & self._mask
                while self._hashes[slot] != _EMPTY:
                    slot = (slot + 1) & self._mask
                self._hashes[slot] = digest
                self._places[slot] = place


def _pydantic_problems(exc: PydanticValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                     for err in exc.errors())


def check_request(data: dict[str, Any], models: Collection[str]) -> tuple[str, str] | str:
    """(code, message) of the first problem of a parsed line, or the normalised body JSON."""
    unknown = sorted(set(data) - LINE_FIELDS)
    if unknown:
        return "invalid_line", f"unknown field(s): {', '.join(unknown)}"
    if data.get("method") != "POST":
        return "invalid_method", f"method must be POST, not {data.get('method')!r}"
    url = data.get("url")
    kind = URL_KINDS.get(url) if isinstance(url, str) else None
    if kind is None:
        return "invalid_url", f"unknown URL {url!r}; use one of {', '.join(URL_KINDS)}"
    body = data.get("body")
    if not isinstance(body, dict):
        return "invalid_body", "body must be a JSON object"
    try:
        parsed = JobBody.model_validate(body)
    except PydanticValidationError as exc:
        return "invalid_body", _pydantic_problems(exc)
    if parsed.kind != kind:
        wanted = "messages" if kind == "chat" else "input"
        return "invalid_body", f"{url} takes `{wanted}` in its body"
    if parsed.model not in models:
        return "unknown_model", f"model {parsed.model!r} is not in the catalog"
    return parsed.model_dump_json(exclude_none=True)


def _custom_id(data: dict[str, Any]) -> str | tuple[str, str]:
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "invalid_custom_id", "custom_id must be a non-empty string"
    if len(custom_id) > MAX_CUSTOM_ID:
        return "invalid_custom_id", f"custom_id is longer than {MAX_CUSTOM_ID} characters"
    return custom_id


class BatchFile:
    """One pass over a JSONL file, yielding a BatchLine or a BadLine per line."""

    def __init__(self, path: str | os.PathLike[str], models: Collection[str]) -> None:
        self.path = Path(path)
        self.models = models
        self.lines = 0
        self.valid = 0
        self.invalid = 0
        self.bytes_read = 0
        self._recall_handle: BinaryIO | None = None
        self.custom_ids = CustomIdSet(self._recall)

    def _recall(self, offset: int) -> str | None:
        """The custom_id of the line starting at `offset` (a second handle; rare)."""
        if self._recall_handle is None:
            self._recall_handle = self.path.open("rb")
        self._recall_handle.seek(offset)
        try:
            value = json.loads(self._recall_handle.readline()).get("custom_id")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    def __iter__(self) -> Iterator[BatchLine | BadLine]:
        try:
            with self.path.open("rb") as handle:
                offset = 0
                for number, raw in enumerate(handle, 1):
                    start, offset = offset, offset + len(raw)
                    self.lines, self.bytes_read = number, offset
                    # A blank line is reported like any other: every line is checked.
                    checked = (self._check(number, raw, start) if raw.strip()
                               else BadLine(number, "blank_line", "the line is blank"))
                    if isinstance(checked, BadLine):
                        self.invalid += 1
                    else:
                        self.valid += 1
                    yield checked
        finally:
            if self._recall_handle is not None:
                self._recall_handle.close()
                self._recall_handle = None

    def _check(self, number: int, raw: bytes, offset: int) -> BatchLine | BadLine:
        try:
            data = json.loads(raw)
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            return BadLine(number, "invalid_json", f"not JSON: {exc}")
        if not isinstance(data, dict):
            return BadLine(number, "invalid_json", "the line is not a JSON object")
        custom_id = _custom_id(data)
        if isinstance(custom_id, tuple):
            return BadLine(number, *custom_id)
        earlier = self.custom_ids.add(custom_id, offset)
        if earlier is not None:
            # The custom_id belongs to its first line: the repeat names it only in the
            # message, so each custom_id is in exactly one of the output and errors files.
            return BadLine(number, "duplicate_custom_id",
                           f"custom_id {custom_id!r} was already used on an earlier line")
        checked = check_request(data, self.models)
        if isinstance(checked, tuple):
            return BadLine(number, *checked, custom_id=custom_id)
        return BatchLine(number, custom_id, data["url"], checked)


def spool(lines: Iterable[str | bytes | Mapping[str, Any]],
          directory: str | None = None) -> Path:
    """Write lines given in memory (JSON text or objects) to a temporary JSONL file.

    Validation then reads a file like any other, so an iterator is consumed once and the
    rare duplicate check can read an earlier line back. The caller deletes the file.
    """
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - handed to the caller by path
        "wb", prefix="aibroker-batch-", suffix=".jsonl", dir=directory, delete=False)
    with handle:
        for item in lines:
            if isinstance(item, Mapping):
                raw = json.dumps(item, separators=(",", ":")).encode()
            else:
                raw = item.encode() if isinstance(item, str) else item
            handle.write(raw.rstrip(b"\r\n") + b"\n")
    return Path(handle.name)
