"""PII detectors and the `pii` content guard: per-type checks, modes, corpus quality floors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from broker.catalog import EnvOverrides, hash_key, parse_catalog
from broker.schemas import JobBody
from policies.evaluate_guards import PII_CORPUS, evaluate_pii, load_corpus
from policies.guards.base import build_content_guard
from policies.pii_detectors import (
    ALL_KINDS,
    find_pii,
    iban_valid,
    known_iin,
    luhn_valid,
    nir_valid,
    redact,
    ssn_valid,
)
from policies.pipeline import PolicyPipeline

KEY = "key-pii"
# Per type: a sentence holding exactly one value of it, and one holding a look-alike only.
CASES: dict[str, tuple[list[str], list[str]]] = {
    "email": (["write to jane.doe@example.com today", "<ops+alerts@mail.example.org>"],
              ["logo@2x.png", "npm i lodash@4.17.21", "user@localhost", "@here review"]),
    "phone": (["call +33 6 12 34 56 78", "(202) 555-0143", "020 7946 0958", "Tel: 0612345678"],
              ["order 123456789012", "2024-03-15 10:30", "ISBN 978-3-16-148410-0"]),
    "card": (["4111 1111 1111 1111", "3782 822463 10005", "5555-5555-5555-4444"],
             ["4111 1111 1111 1112", "0000 0000 0000 0000", "IMEI 490154203237518"]),
    "iban": (["DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819"],
             ["DE90 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130", "XX89 3704 0044 05"]),
    "ipv4": (["from 192.0.2.44 today", "curl http://203.0.113.9:443/"],
             ["1.2.3.4.5", "version 1.2.3.4", "256.1.1.1", "127.0.0.1", "255.255.255.0"]),
    "ipv6": (["host 2001:db8::1 up", "fe80::1ff:fe23:4567:890a"],
             ["std::vector", "10:30:45", "00:1A:2B:3C:4D:5E", "::1", "a::b"]),
    "ssn": (["SSN 536-22-8174", "ssn: 536228174"],
            ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"]),
    "nir": (["NIR 1 85 05 78 006 084 91", "NIR 1 92 03 2A 004 123 69"],
            ["NIR 1 85 05 78 006 084 92", "NIR 3 85 05 78 006 084 91"]),
}


def _kinds(text: str) -> list[str]:
    return [match.kind for match in find_pii(text)]


@pytest.mark.parametrize(("kind", "text"), [
    (kind, text) for kind, (positives, _) in CASES.items() for text in positives])
def test_each_type_is_found(kind: str, text: str) -> None:
    assert _kinds(text) == [kind]


@pytest.mark.parametrize(("kind", "text"), [
    (kind, text) for kind, (_, negatives) in CASES.items() for text in negatives])
def test_look_alikes_are_not_pii(kind: str, text: str) -> None:
    assert _kinds(text) == []


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("FR14 2004 1010 0505 0001 3M02 606")
    assert not iban_valid("FR14 2004 1010 0505 0001 3M02 607")
    assert not iban_valid("FR1420041010050500013M0260")  # one character short for FR
    assert nir_valid("185057800608491") and not nir_valid("185057800608492")
    assert nir_valid("2 85 07 2B 033 210 32") == (97 - int("2850718033210") % 97 == 32)
    assert ssn_valid("899", "99", "9999") and not ssn_valid("666", "12", "3456")
    assert known_iin("378282246310005") and not known_iin("9111111111111111")


def test_strict_iin_drops_cards_outside_known_networks() -> None:
    number = "7000 0000 0000 0005"  # passes Luhn, no major network starts with 7
    assert _kinds(number) == ["card"]
    assert find_pii(number, strict_card_iin=True) == []


def test_types_restrict_the_search_and_overlaps_resolve_once() -> None:
    text = "mail a@example.com or call +1 (202) 555-0143, IBAN DE89 3704 0044 0532 0130 00"
    assert _kinds(text) == ["email", "phone", "iban"]
    assert [m.kind for m in find_pii(text, ["phone"])] == ["phone"]


def test_redact_replaces_values_with_placeholders() -> None:
    text = "Jane (jane@example.com, 4111 1111 1111 1111) paid."
    assert redact(text, find_pii(text)) == "Jane ([REDACTED:EMAIL], [REDACTED:CARD]) paid."


def test_windowed_scan_matches_a_whole_text_scan_on_the_corpus() -> None:
    for row in load_corpus(PII_CORPUS):
        assert find_pii(row["text"]) == find_pii(row["text"], whole_text=True), row["note"]


# --- the guard through the pipeline ---------------------------------------------------------

def _pipeline(mode: str, **options: Any) -> PolicyPipeline:
    return PolicyPipeline(parse_catalog({
        "models": {"chat": {"deployments": [
            {"name": "a", "base_url": "http://x/v1", "model": "gpt-4o-mini"}]}},
        "tenants": {"t": {"key_sha256": hash_key(KEY), "allowed_models": ["*"],
                          "guards": {"pii": {"mode": mode, "options": options}}}},
    }, Path("c.yaml"), EnvOverrides()))


SECRET_VALUES = ("jane.doe@example.com", "4111 1111 1111 1111", "+33 6 12 34 56 78")
PROMPT = f"I am {SECRET_VALUES[0]}, card {SECRET_VALUES[1]}, phone {SECRET_VALUES[2]}."


def _chat(text: str = PROMPT) -> JobBody:
    return JobBody.model_validate({"model": "chat", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]})


def _no_values(*texts: str) -> None:
    for text in texts:
        for value in SECRET_VALUES:
            assert value not in text


def test_off_mode_builds_no_guard() -> None:
    verdict, ctx = _pipeline("off").evaluate("j", _chat(), hash_key(KEY))
    assert verdict.allowed and ctx.findings == {} and not ctx.body_changed


def test_log_mode_allows_and_counts_without_values() -> None:
    verdict, ctx = _pipeline("log").evaluate("j", _chat(), hash_key(KEY))
    assert verdict.allowed and not ctx.body_changed
    assert ctx.findings == {"pii.email": 1, "pii.card": 1, "pii.phone": 1}
    assert len(ctx.warnings) == 1 and "card=1" in ctx.warnings[0]
    _no_values(*ctx.warnings, *ctx.findings)


def test_redact_mode_rewrites_every_text_and_keeps_the_rest() -> None:
    verdict, ctx = _pipeline("redact").evaluate("j", _chat(), hash_key(KEY))
    assert verdict.allowed and ctx.body_changed
    assert ctx.findings == {"pii.email": 1, "pii.card": 1, "pii.phone": 1}
    messages = ctx.body.messages or []
    assert messages[0].content == "Be brief."
    assert messages[1].content == ("I am [REDACTED:EMAIL], card [REDACTED:CARD], "
                                   "phone [REDACTED:PHONE].")
    _no_values(ctx.body.model_dump_json())


def test_redact_mode_covers_parts_tool_calls_and_embeddings() -> None:
    pipeline = _pipeline("redact")
    body = JobBody.model_validate({"model": "chat", "messages": [
        {"role": "user", "content": [{"type": "text", "text": f"mail {SECRET_VALUES[0]}"},
                                     {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {
            "name": "lookup", "arguments": f'{{"card": "{SECRET_VALUES[1]}"}}'}}]}]})
    _, ctx = pipeline.evaluate("j", body, hash_key(KEY))
    _no_values(ctx.body.model_dump_json())
    assert ctx.findings == {"pii.email": 1, "pii.card": 1}
    embed = JobBody.model_validate({"model": "chat", "input": [PROMPT, "clean"]})
    _, ctx = pipeline.evaluate("j", embed, hash_key(KEY))
    assert isinstance(ctx.body.input, list) and ctx.body.input[1] == "clean"
    _no_values(ctx.body.model_dump_json())


def test_redact_mode_leaves_a_clean_body_untouched() -> None:
    body = _chat("nothing personal here")
    verdict, ctx = _pipeline("redact").evaluate("j", body, hash_key(KEY))
    assert verdict.allowed and ctx.body is body and not ctx.body_changed and ctx.findings == {}


def test_block_mode_refuses_with_kinds_and_counts_only() -> None:
    verdict, ctx = _pipeline("block").evaluate("j", _chat(), hash_key(KEY))
    assert not verdict.allowed and verdict.rejection is not None
    assert verdict.rejection.code == "pii_detected"
    assert "card=1" in verdict.rejection.message and "email=1" in verdict.rejection.message
    _no_values(verdict.rejection.message, str(verdict.rejection.to_dict()), *ctx.warnings)


def test_block_mode_with_selected_types_ignores_the_others() -> None:
    verdict, _ = _pipeline("block", types=["ssn", "nir"]).evaluate("j", _chat(), hash_key(KEY))
    assert verdict.allowed


@pytest.mark.parametrize("options", [{"types": ["passport"]}, {"colour": "red"}, {"types": []}])
def test_bad_options_are_refused_at_build(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        build_content_guard("pii", options)


# --- corpus ------------------------------------------------------------------------------------

def test_corpus_has_enough_cases_per_type() -> None:
    rows = load_corpus(PII_CORPUS)
    for kind in ALL_KINDS:
        mine = [row for row in rows if row["kind"] == kind]
        assert sum(1 for row in mine if row["label"] == kind) >= 15, kind
        assert sum(1 for row in mine if row["label"] is False) >= 15, kind
    assert {row["lang"] for row in rows} >= {"en", "fr", "de", "es", "it"}


def test_corpus_quality_floors() -> None:
    # Measured: precision 1.00 and recall 1.00 for every type (288 lines; 33 written after
    # the first tuning round missed 5 before the fixes). Floors sit a little below.
    for kind, scores in evaluate_pii(load_corpus(PII_CORPUS)).items():
        assert scores.precision >= 0.95, (kind, scores)
        assert scores.recall >= 0.93, (kind, scores)
