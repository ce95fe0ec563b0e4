"""OpenAI-compatible presets: every module here registers one, so a new preset is one file."""

from broker.plugins import load_plugins

load_plugins(__name__)
