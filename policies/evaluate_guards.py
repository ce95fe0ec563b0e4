"""Precision, recall and F1 of the PII detectors and the injection scorer on labelled corpora.

    python -m policies.evaluate_guards [--threshold 0.5] [--bench]

Corpora (JSON lines, see tests/data): each PII line is {"text", "label": kind | false, "kind",
"lang", "note"}; each injection line is {"text", "label": bool, "lang", "note"}. A PII line
counts as a true positive for its kind when the detectors find that kind in it; any other line
in which they find the kind is a false positive for it. `--mistakes` lists the misclassified
lines; `--bench` adds the CPU µs per job of each content guard on a ~460-token support prompt.
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.schemas import ChatMessage, JobBody
from broker.tokens import count_inputs
from policies.guards.base import PolicyContext, build_content_guard
from policies.guards.injection import DEFAULT_THRESHOLD
from policies.injection_detector import assess
from policies.pii_detectors import ALL_KINDS, find_pii

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
PII_CORPUS = DATA / "pii_corpus.jsonl"
INJECTION_CORPUS = DATA / "injection_corpus.jsonl"


@dataclass(frozen=True, slots=True)
class Scores:
    """Confusion counts with the usual ratios."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        """Share of flagged cases that are real (1.0 when nothing was flagged)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Share of real cases that were flagged (1.0 when there are none)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    @property
    def positives(self) -> int:
        """Cases labelled positive."""
        return self.tp + self.fn


def load_corpus(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (blank lines skipped)."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _score(pairs: Iterable[tuple[bool, bool]]) -> Scores:
    tp = fp = fn = tn = 0
    for expected, found in pairs:
        tp += expected and found
        fp += found and not expected
        fn += expected and not found
        tn += not expected and not found
    return Scores(tp, fp, fn, tn)


def evaluate_pii(rows: list[dict[str, Any]]) -> dict[str, Scores]:
    """Scores per PII kind: every line is scanned for every kind."""
    found = [{match.kind for match in find_pii(row["text"])} for row in rows]
    return {kind: _score((row["label"] == kind, kind in kinds) for row, kinds in zip(
        rows, found, strict=True)) for kind in ALL_KINDS}


def pii_mistakes(rows: list[dict[str, Any]]) -> list[str]:
    """Lines where the detected kinds differ from the label, for a human to read."""
    out: list[str] = []
    for row in rows:
        kinds = sorted({match.kind for match in find_pii(row["text"])})
        expected = [row["label"]] if row["label"] else []
        if kinds != expected:
            out.append(f"expected {expected} found {kinds}: {row['note']}")
    return out


def evaluate_injection(rows: list[dict[str, Any]], threshold: float) -> Scores:
    """Scores of the injection scorer at a threshold."""
    return _score((bool(row["label"]), assess(row["text"]).score >= threshold) for row in rows)


def injection_mistakes(rows: list[dict[str, Any]], threshold: float) -> list[str]:
    """Misclassified injection lines with their score and signals."""
    out: list[str] = []
    for row in rows:
        result = assess(row["text"])
        if (result.score >= threshold) != bool(row["label"]):
            out.append(f"label={row['label']} score={result.score:.2f} "
                       f"{list(result.signals)} [{row['lang']}] {row['note']}")
    return out


def bench_guards(prompt: str, repeat: int = 2000) -> dict[str, float]:
    """CPU µs per job of each content guard in block mode (best of 5 runs of `repeat` jobs)."""
    body = JobBody(model="m", messages=[ChatMessage(role="user", content=prompt)])
    guards = {
        "pii": build_content_guard("pii", {}),
        "injection": build_content_guard("injection", {}),
        "deny_list": build_content_guard("deny_list", {"patterns": [
            r"project\s+falcon", r"\binternal[- ]only\b", r"confidential"]}),
    }
    results: dict[str, float] = {}
    for name, guard in guards.items():
        def run(guard: Any = guard) -> None:
            ctx = PolicyContext(job_id="j", body=body, key_sha256="", catalog=None)  # type: ignore[arg-type]
            guard.inspect(ctx, "block")
        results[name] = min(timeit.repeat(run, number=repeat, repeat=5,
                                          timer=time.thread_time)) / repeat * 1e6
    return results


def _table(title: str, scores: dict[str, Scores]) -> str:
    lines = [title, f"  {'':<10} {'n+':>4} {'tp':>4} {'fp':>4} {'fn':>4} "
                    f"{'precision':>9} {'recall':>7} {'f1':>6}"]
    for name, s in scores.items():
        lines.append(f"  {name:<10} {s.positives:>4} {s.tp:>4} {s.fp:>4} {s.fn:>4} "
                     f"{s.precision:>9.3f} {s.recall:>7.3f} {s.f1:>6.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the evaluation tables (and optionally the per-job cost)."""
    parser = argparse.ArgumentParser(prog="python -m policies.evaluate_guards")
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--mistakes", action="store_true")
    args = parser.parse_args(argv)
    threshold = args.threshold if args.threshold is not None else DEFAULT_THRESHOLD
    pii_rows, inj_rows = load_corpus(PII_CORPUS), load_corpus(INJECTION_CORPUS)
    print(_table(f"PII detectors ({len(pii_rows)} lines)", evaluate_pii(pii_rows)))
    positives = sum(bool(row["label"]) for row in inj_rows)
    sweep = {f"t={t:.2f}": evaluate_injection(inj_rows, t) for t in (0.4, 0.45, 0.5, 0.6, 0.7)}
    sweep = {f"t={threshold:.2f}*": evaluate_injection(inj_rows, threshold), **sweep}
    print(_table(f"Injection scorer ({len(inj_rows)} lines: {positives} injections, "
                 f"{len(inj_rows) - positives} benign)", sweep))
    if args.mistakes:
        print("\n".join(["PII mistakes:", *pii_mistakes(pii_rows), "Injection mistakes:",
                         *injection_mistakes(inj_rows, threshold)]))
    if args.bench:
        tokens = count_inputs(_BENCH_PROMPT, "o200k_base")
        print(f"Per-job cost, one user message of {tokens} tokens:")
        for name, micros in bench_guards(_BENCH_PROMPT).items():
            print(f"  {name:<10} {micros:8.1f} µs/job")


_BENCH_PROMPT = """You are helping our support team draft a reply to a customer. Read the \
thread below, then write a short, polite answer and a three-bullet summary for the agent.

Thread (most recent last):

Customer, 12 March 2024: Hello, I ordered the espresso machine (order 5521-0098) on the 2nd and \
was charged twice, 349.90 EUR each time. My bank statement shows both payments on the same day. \
Could you refund the second one? I have attached a screenshot of the statement.

Agent, 13 March 2024: Thank you for reaching out, and sorry for the trouble. I can see two \
authorisations on your order. One of them should drop off within five working days; if it does \
not, we will refund it manually. I have flagged the order for the finance team.

Customer, 19 March 2024: It has now been a week and both payments are still there. I also noticed \
that the delivery date moved from the 15th to the 22nd without any notice. I would like to know \
what is going on, because I bought this as a birthday present and I need it before the 24th. If \
the machine cannot arrive in time I would rather cancel the order and get all my money back.

Agent, 20 March 2024: I understand. I asked the warehouse about the delay: the machine is back \
in stock and leaves tomorrow by express courier, so it should arrive on the 21st. Finance has \
confirmed the duplicate charge and started the refund; it usually takes three to five working \
days to appear, depending on the bank.

Customer, 26 March 2024: The machine arrived, thanks, but the refund has not. Please check again.

Instructions for the reply: keep it under 120 words, apologise once, do not promise a date that \
finance has not confirmed, and mention that the customer can reply to this email if the refund \
has not appeared by the end of the week. Use British spelling. The summary for the agent should \
list what happened, what was promised, and the next step, each in one line. Sign the reply with \
the team name only, not with a person's name, and do not include internal ticket numbers.
"""


if __name__ == "__main__":
    main()
