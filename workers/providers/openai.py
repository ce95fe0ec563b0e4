"""OpenAI itself, and any endpoint that speaks its API unchanged."""

from __future__ import annotations

from workers.providers.base import register
from workers.providers.openai_compat import OpenAICompatibleAdapter

register(OpenAICompatibleAdapter("openai"))
register(OpenAICompatibleAdapter("openai-compatible"))
