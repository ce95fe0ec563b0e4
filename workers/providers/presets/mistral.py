"""Mistral AI (base_url https://api.mistral.ai/v1): `random_seed`, `output_dimension`, no `user`."""

from workers.providers.base import register
from workers.providers.presets.base import PresetAdapter

register(PresetAdapter(
    "mistral",
    renames={"max_completion_tokens": "max_tokens", "seed": "random_seed",
             "dimensions": "output_dimension"},
    drops=("user",),
))
