"""Content guard `injection`: scores prompts with the heuristic prompt-injection detector.

Options (catalog `guards.injection.options`):

    threshold: 0.5          # refuse (block) or warn (log) at or above this score, in (0, 1]
    roles: [user, tool]     # messages scored; system/developer/assistant text is the tenant's

The texts of the chosen roles (and embeddings input) are scored together. The default
threshold comes from the labelled corpus in tests/data (`python -m policies.evaluate_guards`).
Findings are recorded as `injection.<signal>` counts; messages carry the score and the signal
names, never the text. `redact` mode blocks, like `block`: an injection has no value to cut out
while keeping the rest of the prompt meaningful, so it is refused rather than passed on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.catalog import GuardMode
from broker.errors import PromptInjection
from policies.guards.base import ContentGuard, PolicyContext, Verdict, register_content_guard
from policies.guards.texts import body_texts
from policies.injection_detector import assess

DEFAULT_THRESHOLD = 0.5
Role = Literal["system", "developer", "user", "assistant", "tool"]


class InjectionOptions(BaseModel):
    """Options of the `injection` guard; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(DEFAULT_THRESHOLD, gt=0, le=1)
    roles: tuple[Role, ...] = Field(("user", "tool"), min_length=1)


class InjectionGuard:
    """Refuses (or logs) prompts scoring at or above the threshold."""

    name = "injection"

    def __init__(self, options: InjectionOptions) -> None:
        self.threshold = options.threshold
        self.roles = frozenset(options.roles)

    def inspect(self, ctx: PolicyContext, mode: GuardMode) -> Verdict:
        """Score the chosen roles' text; log mode warns, block and redact modes refuse."""
        text = "\n".join(body_texts(ctx.body, self.roles))
        if not text:
            return Verdict.allow()
        result = assess(text)
        if result.score < self.threshold:
            return Verdict.allow()
        for signal in result.signals:
            ctx.record(f"injection.{signal}")
        detail = (f"score {result.score:.2f} ≥ threshold {self.threshold:.2f}; "
                  f"signals: {', '.join(result.signals)}")
        if mode == "log":
            ctx.warnings.append(f"injection: prompt injection suspected ({detail})")
            return Verdict.allow()
        return Verdict.refuse(PromptInjection(f"prompt injection suspected ({detail})"))


@register_content_guard("injection")
def build_injection_guard(options: dict[str, Any]) -> ContentGuard:
    """The `injection` guard from its catalog options (validated; unknown keys refused)."""
    return InjectionGuard(InjectionOptions.model_validate(options))
