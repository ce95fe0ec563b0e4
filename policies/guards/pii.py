"""Content guard `pii`: finds personal data in prompts; logs, redacts or blocks it.

Options (catalog `guards.pii.options`):

    types: [email, phone, card, iban, ipv4, ipv6, ssn, nir]   # default: all
    strict_card_iin: false    # true: a card number must also start with a major network's IIN

Findings are recorded as `pii.<kind>` counts; values never leave this module except as the
`[REDACTED:<KIND>]` placeholders of `redact` mode. Every text of the body is scanned: each
message's content (string or text parts, every role), tool-call arguments, embeddings input.

This module also holds the two body walkers the other content guards share.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from broker.catalog import GuardMode
from broker.errors import PiiDetected
from policies.guards.base import ContentGuard, PolicyContext, Verdict, register_content_guard
from policies.guards.texts import conclude, scan_or_scrub
from policies.pii_detectors import ALL_KINDS, Match, PiiKind, find_pii, redact


def summarize(counts: Counter[str]) -> str:
    """'email=2, phone=1': kinds and counts, never values."""
    return ", ".join(f"{kind}={count}" for kind, count in sorted(counts.items()))


class PiiOptions(BaseModel):
    """Options of the `pii` guard; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: tuple[PiiKind, ...] = Field(ALL_KINDS, min_length=1)
    strict_card_iin: bool = False


class PiiGuard:
    """Emails, phones, cards, IBANs, IPs, SSNs and NIRs: log, redact or block."""

    name = "pii"

    def __init__(self, options: PiiOptions) -> None:
        self.types = frozenset(options.types)
        self.strict_card_iin = options.strict_card_iin

    def inspect(self, ctx: PolicyContext, mode: GuardMode) -> Verdict:
        """Count PII by kind; in redact mode rewrite the body, in block mode refuse it."""
        counts: Counter[str] = Counter()
        def scan(text: str) -> list[Match]:
            matches = find_pii(text, self.types, strict_card_iin=self.strict_card_iin)
            counts.update(match.kind for match in matches)
            return matches

        def scrub(text: str) -> str:
            matches = scan(text)
            return redact(text, matches) if matches else text

        scan_or_scrub(ctx, mode, scan, scrub)
        if not counts:
            return Verdict.allow()
        for kind, count in counts.items():
            ctx.record(f"pii.{kind}", count)
        return conclude(ctx, mode, PiiDetected(
            f"prompt contains personal data: {summarize(counts)}"),
            f"pii: personal data found and logged: {summarize(counts)}")


@register_content_guard("pii")
def build_pii_guard(options: dict[str, Any]) -> ContentGuard:
    """The `pii` guard from its catalog options (validated; unknown keys refused)."""
    return PiiGuard(PiiOptions.model_validate(options))
