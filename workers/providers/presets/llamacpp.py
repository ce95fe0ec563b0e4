"""llama.cpp's llama-server (base_url http://HOST:8080/v1): no key, `max_tokens`."""

from workers.providers.base import register
from workers.providers.presets.base import PresetAdapter

register(PresetAdapter("llamacpp", renames={"max_completion_tokens": "max_tokens"},
                       drops=("user",)))
