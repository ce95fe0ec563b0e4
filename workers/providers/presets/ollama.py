"""Ollama's OpenAI compatibility (base_url http://HOST:11434/v1): no key, `max_tokens`."""

from workers.providers.base import register
from workers.providers.presets.base import PresetAdapter

register(PresetAdapter("ollama", renames={"max_completion_tokens": "max_tokens"},
                       drops=("user",)))
