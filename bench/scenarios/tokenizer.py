"""Scenario 7: what counting input tokens costs per job (broker.tokens.count_chat)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.progress import log
from bench.scenarios import Context
from broker.tokens import DEFAULT_ENCODING, count_chat, get_encoding

SIZES = (20, 500, 4_000)
BUDGET_MS = 0.75  # issue 7's broker CPU target per job
_FILLER = ("The broker admits each job against its tenant's limits, routes it to a "
           "deployment with headroom and records the exact usage in the ledger. ")


def messages_of(tokens: int, encoding: str = DEFAULT_ENCODING) -> list[dict[str, str]]:
    """A system and a user message whose content is exactly `tokens` tokens in all."""
    enc = get_encoding(encoding)
    ids = enc.encode_ordinary(_FILLER * (tokens // 20 + 2))
    system_ids, user_ids = ids[:min(20, tokens // 2)], ids[min(20, tokens // 2):tokens]
    return [{"role": "system", "content": enc.decode(system_ids)},
            {"role": "user", "content": enc.decode(user_ids)}]


def time_count(tokens: int, repeats: int = 7) -> dict[str, Any]:
    """Median µs per count_chat call over `repeats` timed loops."""
    messages = messages_of(tokens)
    count_chat(messages)
    loops = max(20, 40_000 // tokens)
    per_call: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(loops):
            count_chat(messages)
        per_call.append((time.perf_counter() - started) / loops * 1e6)
    micros = statistics.median(per_call)
    return {"input_tokens": tokens, "counted": count_chat(messages), "us_per_job": round(micros, 1),
            "share_of_cpu_budget": round(micros / 1000 / BUDGET_MS, 3)}


def run(ctx: Context) -> dict[str, Any]:
    """µs per job at about 20 (the bench prompt), 500 and 4,000 input tokens."""
    get_encoding(DEFAULT_ENCODING)
    points = [time_count(tokens) for tokens in SIZES]
    log("tokenizer: " + "; ".join(f"{p['input_tokens']:,} tokens {p['us_per_job']:,.0f} µs"
                                  for p in points))
    return {"encoding": DEFAULT_ENCODING, "points": points, "cpu_budget_ms_per_job": BUDGET_MS}
