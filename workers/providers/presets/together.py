"""Together AI (base_url https://api.together.xyz/v1): the output cap is `max_tokens`."""

from workers.providers.base import register
from workers.providers.presets.base import PresetAdapter

register(PresetAdapter("together", renames={"max_completion_tokens": "max_tokens"}))
