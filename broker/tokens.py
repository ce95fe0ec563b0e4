"""Token counting with tiktoken, offline: the encodings ship inside the package."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import tiktoken

DATA_DIR = Path(__file__).with_name("tokenizer_data")

# tiktoken caches a download under the SHA-1 of its URL; the shipped files carry those names.
_CACHE_NAMES = {
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
    "p50k_base": "ec7223a39ce59f226a68acc30dc1af2788490e15",
}
DEFAULT_ENCODING = "o200k_base"
# Checked in order; the first prefix that matches an upstream model name wins.
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada", "cl100k_base"),
    ("text-davinci", "p50k_base"),
    ("code-davinci", "p50k_base"),
)
# OpenAI's documented chat framing: a few tokens per message plus the reply primer.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER_TOKENS = 3

_load_lock = threading.Lock()


def encoding_name_for_model(model: str) -> str:
    """The tiktoken encoding for an upstream model name (o200k_base when unknown)."""
    lowered = model.lower()
    for prefix, name in _MODEL_PREFIXES:
        if lowered.startswith(prefix):
            return name
    return DEFAULT_ENCODING


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """Load an encoding from the shipped files, never from the network."""
    if name not in _CACHE_NAMES:
        raise ValueError(f"unknown encoding {name!r}; shipped: {sorted(_CACHE_NAMES)}")
    with _load_lock:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(DATA_DIR)
        try:
            return tiktoken.get_encoding(name)
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous


def count_text(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """Number of tokens in a plain string."""
    return len(get_encoding(encoding).encode_ordinary(text))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: count the text parts
        # Schemas refuse non-string `text`; a part built around them is skipped, not fatal.
        return "".join(
            text for part in content if isinstance(part, Mapping)
            and isinstance(text := part.get("text", ""), str)
        )
    return "" if content is None else str(content)


def count_chat(messages: Iterable[Mapping[str, Any]], encoding: str = DEFAULT_ENCODING) -> int:
    """Prompt tokens of a chat request, framed the way OpenAI counts them."""
    enc = get_encoding(encoding)
    total = REPLY_PRIMER_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += len(enc.encode_ordinary(str(message.get("role", ""))))
        total += len(enc.encode_ordinary(_content_text(message.get("content"))))
        name = message.get("name")
        if name:
            total += TOKENS_PER_NAME + len(enc.encode_ordinary(str(name)))
    return total


def count_inputs(inputs: str | list[str], encoding: str = DEFAULT_ENCODING) -> int:
    """Tokens of an embeddings input (one string or a list of strings)."""
    items = [inputs] if isinstance(inputs, str) else inputs
    enc = get_encoding(encoding)
    return sum(len(enc.encode_ordinary(item)) for item in items)


# Upper bound on the UTF-8 bytes of one token for the size check made before counting:
# tiktoken's tokens average about 4 bytes of prose; the slack keeps code and unusual
# scripts that still fit the token limit from being refused by size alone.
BYTES_PER_TOKEN = 8
SIZE_SLACK_BYTES = 16_384


def byte_bound(max_input_tokens: int) -> int:
    """The most UTF-8 bytes of text a job within `max_input_tokens` is allowed to carry."""
    return max_input_tokens * BYTES_PER_TOKEN + SIZE_SLACK_BYTES


def text_bytes(messages: Iterable[Mapping[str, Any]] | None,
               inputs: str | list[str] | None) -> int:
    """UTF-8 bytes of the text a job's tokens are counted from (cheap next to counting)."""
    if messages is None:
        items = [inputs] if isinstance(inputs, str) else list(inputs or [])
        return sum(len(item.encode("utf-8", "replace")) for item in items)
    total = 0
    for message in messages:
        total += len(_content_text(message.get("content")).encode("utf-8", "replace"))
        total += len(str(message.get("name") or "").encode("utf-8", "replace"))
    return total
