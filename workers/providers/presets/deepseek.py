"""DeepSeek (base_url https://api.deepseek.com/v1): `max_tokens` only, no seed; no embeddings."""

from workers.providers.base import register
from workers.providers.presets.base import PresetAdapter

register(PresetAdapter("deepseek", renames={"max_completion_tokens": "max_tokens"},
                       drops=("seed",)))
