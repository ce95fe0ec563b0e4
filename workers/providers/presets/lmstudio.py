"""LM Studio's local server (base_url http://HOST:1234/v1): no key, `max_tokens`."""

from workers.providers.base import register
from workers.providers.presets.base import PresetAdapter

register(PresetAdapter("lmstudio", renames={"max_completion_tokens": "max_tokens"},
                       drops=("user",)))
