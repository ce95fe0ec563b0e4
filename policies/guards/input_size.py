"""Prompts over the tenant's input-token limit never reach a model."""

from __future__ import annotations

from broker.errors import InputTooLarge
from broker.tokens import byte_bound, text_bytes
from policies.guards.base import PolicyContext, Verdict, register_guard


def body_bytes(ctx: PolicyContext) -> int:
    """UTF-8 bytes of the job's countable text."""
    messages = ([m.model_dump(include={"content", "name"}) for m in ctx.body.messages]
                if ctx.body.messages is not None else None)
    return text_bytes(messages, ctx.body.input)


@register_guard("input_size")
class InputSize:
    """Refuses by size first (cheap), then counts tokens and compares with max_input_tokens."""

    name = "input_size"

    def check(self, ctx: PolicyContext) -> Verdict:
        """Refuse a prompt longer than the tenant allows."""
        if ctx.tenant is None:
            return Verdict.allow()
        limit = ctx.tenant.max_input_tokens
        if not ctx.counted_tokens:
            # Counting megabytes takes seconds of the worker; a size bound needs none.
            size = body_bytes(ctx)
            if size > byte_bound(limit):
                return Verdict.refuse(InputTooLarge(
                    f"input has {size} bytes of text, more than {byte_bound(limit)} "
                    f"allowed for a limit of {limit} tokens"))
        tokens = ctx.input_tokens
        if tokens > limit:
            return Verdict.refuse(InputTooLarge(
                f"input has {tokens} tokens; the limit is {limit}"))
        return Verdict.allow()
