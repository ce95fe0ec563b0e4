"""vLLM's OpenAI-compatible server (base_url http://HOST:8000/v1), usually without a key."""

from workers.providers.base import register
from workers.providers.presets.base import PresetAdapter

register(PresetAdapter("vllm"))
