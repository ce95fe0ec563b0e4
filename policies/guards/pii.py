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
from collections.abc import Callable, Collection, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from broker.catalog import GuardMode
from broker.errors import PiiDetected
from broker.schemas import ChatMessage, JobBody
from policies.guards.base import ContentGuard, PolicyContext, Verdict, register_content_guard
from policies.pii_detectors import ALL_KINDS, PiiKind, find_pii, redact

TextFn = Callable[[str], str]


def body_texts(body: JobBody, roles: Collection[str] | None = None) -> Iterator[str]:
    """Every text a job sends upstream (messages of the given roles, or all; input strings)."""
    if body.messages is None:
        yield from [body.input] if isinstance(body.input, str) else body.input or ()
        return
    for message in body.messages:
        if roles is not None and message.role not in roles:
            continue
        if isinstance(message.content, str):
            yield message.content
        elif message.content is not None:
            yield from (part["text"] for part in message.content if _is_text_part(part))
        for call in message.tool_calls or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                yield arguments


def map_body_texts(body: JobBody, fn: TextFn) -> JobBody | None:
    """The body with fn applied to every text `body_texts` yields; None when nothing changed."""
    if body.messages is None:
        if isinstance(body.input, str):
            new_input: str | list[str] = fn(body.input)
        else:
            new_input = [fn(text) for text in body.input or ()]
        return None if new_input == body.input else body.model_copy(update={"input": new_input})
    messages = [_map_message(message, fn) for message in body.messages]
    if all(new is old for new, old in zip(messages, body.messages, strict=True)):
        return None
    return body.model_copy(update={"messages": messages})


def _is_text_part(part: dict[str, Any]) -> bool:
    return part.get("type") == "text" and isinstance(part.get("text"), str)


def _map_message(message: ChatMessage, fn: TextFn) -> ChatMessage:
    update: dict[str, Any] = {}
    content = message.content
    if isinstance(content, str):
        new = fn(content)
        if new != content:
            update["content"] = new
    elif content is not None:
        parts = [{**part, "text": fn(part["text"])} if _is_text_part(part) else part
                 for part in content]
        if parts != content:
            update["content"] = parts
    if message.tool_calls:
        calls = [_map_call(call, fn) for call in message.tool_calls]
        if calls != message.tool_calls:
            update["tool_calls"] = calls
    return message.model_copy(update=update) if update else message


def _map_call(call: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": fn(function["arguments"])}}


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
        if mode == "redact":
            def scrub(text: str) -> str:
                matches = find_pii(text, self.types, strict_card_iin=self.strict_card_iin)
                counts.update(match.kind for match in matches)
                return redact(text, matches) if matches else text

            new_body = map_body_texts(ctx.body, scrub)
            if new_body is not None:
                ctx.replace_body(new_body)
        else:
            for text in body_texts(ctx.body):
                counts.update(match.kind for match in find_pii(
                    text, self.types, strict_card_iin=self.strict_card_iin))
        if not counts:
            return Verdict.allow()
        for kind, count in counts.items():
            ctx.record(f"pii.{kind}", count)
        if mode == "block":
            return Verdict.refuse(PiiDetected(
                f"prompt contains personal data: {summarize(counts)}"))
        if mode == "log":
            ctx.warnings.append(f"pii: personal data found and logged: {summarize(counts)}")
        return Verdict.allow()


@register_content_guard("pii")
def build_pii_guard(options: dict[str, Any]) -> ContentGuard:
    """The `pii` guard from its catalog options (validated; unknown keys refused)."""
    return PiiGuard(PiiOptions.model_validate(options))
