"""Content guard `deny_list`: a tenant's own regular expressions; log, redact or block.

Options (catalog `guards.deny_list.options`):

    patterns: ["project\\s+falcon", "\\binternal-only\\b"]   # Python regexes, at least one
    case_insensitive: true                                   # default true

Patterns are compiled once, when the guard is built; an invalid one (or one that matches the
empty string) is a ValueError naming it. Findings are recorded as one `deny_list` count and
rejections name patterns by their index (#0, #1 ...), never the matched text. `redact` mode
replaces each match with `[REDACTED:DENIED]`.

Cost: a pattern that cannot match without some literal word (`project` in `project\\s+falcon`)
is skipped, after one substring test, on ASCII text that lacks the word; other patterns scan
every prompt. Patterns come from the catalog, written by operators: like any regex they can be
slow on purpose-built input, so keep them simple.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from broker.catalog import GuardMode
from broker.errors import DeniedContent
from policies.guards.base import ContentGuard, PolicyContext, Verdict, register_content_guard
from policies.guards.texts import conclude, scan_or_scrub

PLACEHOLDER = "[REDACTED:DENIED]"


class DenyListOptions(BaseModel):
    """Options of the `deny_list` guard; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patterns: tuple[str, ...] = Field(min_length=1)
    case_insensitive: bool = True


def compile_patterns(patterns: tuple[str, ...], case_insensitive: bool) -> list[re.Pattern[str]]:
    """Compiled patterns; ValueError names the first one that is invalid or matches ''."""
    flags = re.IGNORECASE if case_insensitive else 0
    compiled: list[re.Pattern[str]] = []
    for index, pattern in enumerate(patterns):
        try:
            regex = re.compile(pattern, flags)
        except re.error as exc:
            raise ValueError(f"deny_list pattern #{index} {pattern!r} is not a valid regular "
                             f"expression: {exc}") from None
        if regex.fullmatch(""):
            raise ValueError(f"deny_list pattern #{index} {pattern!r} matches the empty string")
        compiled.append(regex)
    return compiled


_LITERAL_RUN = re.compile(r"([A-Za-z0-9_]{3,})(?![?*{])")


def required_literal(pattern: str) -> str | None:
    """A word every match of pattern must contain, for a cheap `in` test first; None if unsure.

    Only plain sequences qualify (no groups, alternation or classes around the word): the
    longest run of three or more ASCII word characters outside [...] that no quantifier makes
    optional.
    """
    if any(ch in pattern for ch in "|()"):
        return None
    outside = re.sub(r"\[[^\]]*\]", " ", re.sub(r"\\.", " ", pattern))  # escapes, classes
    runs = [m.group(1) for m in _LITERAL_RUN.finditer(outside)]
    return max(runs, key=len) if runs else None


class DenyListGuard:
    """Refuses, logs or redacts text matching any of the tenant's patterns."""

    name = "deny_list"

    def __init__(self, options: DenyListOptions) -> None:
        self.patterns = compile_patterns(options.patterns, options.case_insensitive)
        self.case_insensitive = options.case_insensitive
        # A pattern that needs a literal word cannot match an ASCII text without it.
        self.literals = [
            None if word is None else word.lower() if options.case_insensitive else word
            for word in map(required_literal, options.patterns)]

    def _candidates(self, text: str) -> list[tuple[int, re.Pattern[str]]]:
        if not text.isascii():
            return list(enumerate(self.patterns))
        haystack = text.lower() if self.case_insensitive else text
        return [(index, regex) for index, (regex, word) in enumerate(
            zip(self.patterns, self.literals, strict=True)) if word is None or word in haystack]

    def _spans(self, text: str, hits: dict[int, int]) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for index, regex in self._candidates(text):
            found = [m.span() for m in regex.finditer(text) if m.end() > m.start()]
            if found:
                hits[index] = hits.get(index, 0) + len(found)
                spans.extend(found)
        return spans

    def _scrub(self, text: str, hits: dict[int, int]) -> str:
        spans = sorted(self._spans(text, hits))
        if not spans:
            return text
        parts: list[str] = []
        last = 0
        for start, end in spans:  # overlapping matches of several patterns merge into one
            if start >= last:
                parts.append(text[last:start])
                parts.append(PLACEHOLDER)
            last = max(last, end)
        parts.append(text[last:])
        return "".join(parts)

    def inspect(self, ctx: PolicyContext, mode: GuardMode) -> Verdict:
        """Count matches per pattern; redact or refuse according to the mode."""
        hits: dict[int, int] = {}
        scan_or_scrub(ctx, mode, lambda text: self._spans(text, hits),
                      lambda text: self._scrub(text, hits))
        if not hits:
            return Verdict.allow()
        total = sum(hits.values())
        ctx.record("deny_list", total)
        which = ", ".join(f"#{index}={count}" for index, count in sorted(hits.items()))
        return conclude(ctx, mode, DeniedContent(
            f"prompt matches the tenant's deny-list ({total} matches: patterns {which})"),
            f"deny_list: {total} matches logged (patterns {which})")


@register_content_guard("deny_list")
def build_deny_list_guard(options: dict[str, Any]) -> ContentGuard:
    """The `deny_list` guard from its catalog options; invalid patterns raise ValueError."""
    return DenyListGuard(DenyListOptions.model_validate(options))
