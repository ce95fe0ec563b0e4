"""What a preset is: the OpenAI-compatible adapter plus one server's parameter quirks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker.catalog import Deployment
from broker.schemas import JobBody
from workers.providers.openai_compat import OpenAICompatibleAdapter


class PresetAdapter(OpenAICompatibleAdapter):
    """An OpenAI-compatible adapter that renames or drops parameters a server does not take."""

    def __init__(
        self,
        name: str,
        *,
        renames: Mapping[str, str] | None = None,
        drops: Iterable[str] = (),
        chat_path: str = "/chat/completions",
        embeddings_path: str = "/embeddings",
    ) -> None:
        super().__init__(name, chat_path=chat_path, embeddings_path=embeddings_path)
        self.renames = dict(renames or {})
        self.drops = frozenset(drops)

    def payload(self, deployment: Deployment, body: JobBody) -> dict[str, Any]:
        """OpenAI's body with the server's renames applied and unsupported fields removed."""
        data = super().payload(deployment, body)
        for field in self.drops:
            data.pop(field, None)
        for old, new in self.renames.items():
            if old in data:
                data[new] = data.pop(old)
        return data
