"""Prompts over the tenant's input-token limit never reach a model."""

from __future__ import annotations

from broker.errors import InputTooLarge
from policies.guards.base import PolicyContext, Verdict, register_guard


@register_guard("input_size")
class InputSize:
    """Counts input tokens with tiktoken and compares them with max_input_tokens."""

    name = "input_size"

    def check(self, ctx: PolicyContext) -> Verdict:
        """Refuse a prompt longer than the tenant allows."""
        if ctx.tenant is None:
            return Verdict.allow()
        tokens = ctx.input_tokens
        if tokens > ctx.tenant.max_input_tokens:
            return Verdict.refuse(InputTooLarge(
                f"input has {tokens} tokens; the limit is {ctx.tenant.max_input_tokens}"))
        return Verdict.allow()
