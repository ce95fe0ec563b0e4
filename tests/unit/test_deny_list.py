"""The `deny_list` content guard: tenant regexes in log, redact and block modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from broker.catalog import EnvOverrides, hash_key, parse_catalog
from broker.schemas import JobBody
from policies.guards.base import build_content_guard
from policies.guards.deny_list import DenyListGuard, DenyListOptions, required_literal
from policies.pipeline import PolicyPipeline

KEY = "key-deny"
PATTERNS = [r"project\s+falcon", r"\binternal[- ]only\b"]
PROMPT = "Summarise the Project  Falcon memo (INTERNAL-ONLY) for the board."


def _pipeline(mode: str, **options: Any) -> PolicyPipeline:
    options.setdefault("patterns", PATTERNS)
    return PolicyPipeline(parse_catalog({
        "models": {"chat": {"deployments": [
            {"name": "a", "base_url": "http://x/v1", "model": "gpt-4o-mini"}]}},
        "tenants": {"t": {"key_sha256": hash_key(KEY), "allowed_models": ["*"],
                          "guards": {"deny_list": {"mode": mode, "options": options}}}},
    }, Path("c.yaml"), EnvOverrides()))


def _chat(text: str = PROMPT) -> JobBody:
    return JobBody.model_validate({"model": "chat", "messages": [
        {"role": "user", "content": text}]})


def test_block_mode_names_patterns_by_index_never_the_text() -> None:
    verdict, ctx = _pipeline("block").evaluate("j", _chat(), hash_key(KEY))
    assert not verdict.allowed and verdict.rejection is not None
    assert verdict.rejection.code == "denied_content"
    assert "#0=1" in verdict.rejection.message and "#1=1" in verdict.rejection.message
    for secret in ("Falcon", "falcon", "INTERNAL"):
        assert secret not in verdict.rejection.message
    assert ctx.findings == {"deny_list": 2}


def test_log_mode_allows_and_warns() -> None:
    verdict, ctx = _pipeline("log").evaluate("j", _chat(), hash_key(KEY))
    assert verdict.allowed and ctx.findings == {"deny_list": 2}
    assert len(ctx.warnings) == 1 and "Falcon" not in ctx.warnings[0]


def test_redact_mode_replaces_matches() -> None:
    verdict, ctx = _pipeline("redact").evaluate("j", _chat(), hash_key(KEY))
    assert verdict.allowed and ctx.body_changed
    assert (ctx.body.messages or [])[0].content == (
        "Summarise the [REDACTED:DENIED] memo ([REDACTED:DENIED]) for the board.")


def test_overlapping_matches_of_two_patterns_redact_once() -> None:
    guard = DenyListGuard(DenyListOptions(patterns=("secret plan", "plan b")))
    hits: dict[int, int] = {}
    assert guard._scrub("the secret plan b is", hits) == "the [REDACTED:DENIED] is"
    assert hits == {0: 1, 1: 1}


def test_case_sensitivity_is_an_option() -> None:
    assert _pipeline("block").evaluate("j", _chat(), hash_key(KEY))[0].rejection is not None
    verdict, _ = _pipeline("block", case_insensitive=False).evaluate("j", _chat(), hash_key(KEY))
    assert verdict.allowed


def test_clean_prompts_and_off_mode_pass() -> None:
    assert _pipeline("block").evaluate("j", _chat("a falcon flew by"), hash_key(KEY))[0].allowed
    verdict, ctx = _pipeline("off").evaluate("j", _chat(), hash_key(KEY))
    assert verdict.allowed and ctx.findings == {}


def test_invalid_pattern_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"pattern #1 '\(unclosed' is not a valid regular"):
        build_content_guard("deny_list", {"patterns": ["ok", "(unclosed"]})
    with pytest.raises(ValueError, match="matches the empty string"):
        build_content_guard("deny_list", {"patterns": ["x*"]})


@pytest.mark.parametrize("options", [{}, {"patterns": []}, {"patterns": ["a"], "mode": "x"}])
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        build_content_guard("deny_list", options)


@pytest.mark.parametrize(("pattern", "literal"), [
    (r"project\s+falcon", "project"), (r"\binternal[- ]only\b", "internal"),
    (r"colou?r", "colo"), (r"[\]abc]def", "def"), (r"top\.secret", "secret"),
    (r"a|bcd", None), (r"(foo)bar", None), (r"\d{3}-\d{4}", None), (r"x{2}yz", None),
])
def test_required_literal_is_conservative(pattern: str, literal: str | None) -> None:
    assert required_literal(pattern) == literal


@pytest.mark.parametrize("text", [
    PROMPT, "project\tfalcon", "nothing here", "PROJECT FALCON", "Projet façon project falcon",
    "internal only", "internalonly", "an internal-only note",
])
def test_the_literal_prefilter_never_changes_the_answer(text: str) -> None:
    for case_insensitive in (True, False):
        options = DenyListOptions(patterns=(*PATTERNS, "colou?r", "a|b+c"),
                                  case_insensitive=case_insensitive)
        guard, plain = DenyListGuard(options), DenyListGuard(options)
        plain.literals = [None] * len(plain.patterns)  # no prefilter
        fast: dict[int, int] = {}
        slow: dict[int, int] = {}
        assert guard._spans(text, fast) == plain._spans(text, slow) and fast == slow
