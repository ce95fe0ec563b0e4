"""Groq (base_url https://api.groq.com/openai/v1): OpenAI's parameters, x-ratelimit-* headers."""

from workers.providers.base import register
from workers.providers.presets.base import PresetAdapter

register(PresetAdapter("groq"))
