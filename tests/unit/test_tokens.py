"""Token counting works offline, from the encodings shipped in the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.tokens import count_chat, count_inputs, count_text, encoding_name_for_model

_OFFLINE_SCRIPT = """
import socket
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from broker.tokens import count_text
print(count_text("tiktoken is great!", "cl100k_base"), count_text("hello world", "o200k_base"),
      count_text("hello world", "p50k_base"))
"""


def test_counting_needs_no_network(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    env.update({"TMPDIR": str(tmp_path), "HOME": str(tmp_path)})
    done = subprocess.run([sys.executable, "-c", _OFFLINE_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["6", "2", "2"]
    assert not list(tmp_path.iterdir())  # nothing downloaded or cached


@pytest.mark.parametrize(("model", "encoding"), [
    ("gpt-4o-mini", "o200k_base"), ("gpt-4.1", "o200k_base"), ("o3-mini", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base"),
    ("text-embedding-3-small", "cl100k_base"), ("text-davinci-003", "p50k_base"),
    ("llama-3-70b", "o200k_base"),
])
def test_encoding_per_model_family(model: str, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding


def test_chat_framing_adds_per_message_tokens() -> None:
    text = "What is the capital of France?"
    one = count_chat([{"role": "user", "content": text}])
    assert one == count_text(text) + count_text("user") + 3 + 3
    named = count_chat([{"role": "user", "content": text, "name": "bob"}])
    assert named == one + 1 + count_text("bob")
    parts = count_chat([{"role": "user", "content": [{"type": "text", "text": text}]}])
    assert parts == one


def test_embedding_inputs_sum_over_items() -> None:
    assert count_inputs(["hello world", "hello"]) == count_text("hello world") + count_text("hello")
    assert count_inputs("hello world") == count_text("hello world")


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        count_text("x", "r99k_base")


def test_text_bytes_counts_utf8_of_countable_text_only() -> None:
    from broker.tokens import byte_bound, text_bytes

    messages: list[dict[str, Any]] = [{"role": "user", "content": "héllo"},
                {"role": "user", "content": [{"type": "text", "text": "ab"},
                                             {"type": "image_url", "image_url": {}}],
                 "name": "n"}]
    assert text_bytes(messages, None) == 6 + 2 + 1
    assert text_bytes(None, ["ab", "c"]) == 3
    assert text_bytes(None, "abcd") == 4
    assert byte_bound(500) > 500 * 4


def test_a_part_whose_text_is_not_a_string_is_skipped_not_fatal() -> None:
    from broker.tokens import count_chat

    odd = count_chat([{"role": "user", "content": [{"type": "text", "text": 5}]}])
    assert odd == count_chat([{"role": "user", "content": ""}])
