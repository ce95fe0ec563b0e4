"""Azure OpenAI's data-plane inference API, GA api-version 2024-10-21 unless the catalog says.

URLs are `{base_url}/openai/deployments/{model}/chat/completions?api-version=...` (and
`/embeddings`), where base_url is the resource endpoint (https://NAME.openai.azure.com) and
the deployment's `model` is the name of the Azure deployment. The key goes in `api-key`; the
body is OpenAI's without `model`. A prompt stopped by content filtering comes back as 400 with
code `content_filter` and an `innererror` naming the categories: it maps to UpstreamRejected
with detail `content_filter`. A filtered completion is a 200 with finish_reason
`content_filter`, kept as it is. Azure's filter annotations (`prompt_filter_results`,
`content_filter_results`) are dropped from the unified response. Azure's newer v1 API
(`/openai/v1`, no api-version) speaks OpenAI's format: use provider `openai` for it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from broker.catalog import Deployment
from broker.errors import UpstreamError, UpstreamRejected
from broker.schemas import JobBody
from workers.providers.base import HttpReply, UpstreamReply, register
from workers.providers.openai_compat import OpenAICompatibleAdapter

DEFAULT_API_VERSION = "2024-10-21"
CONTENT_FILTER = "content_filter"


def filtered_categories(content: bytes) -> list[str] | None:
    """Categories a 400 content_filter error names, or None when it is another error."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or error.get("code") != CONTENT_FILTER:
        return None
    inner = error.get("innererror")
    result = inner.get("content_filter_result") if isinstance(inner, dict) else None
    if not isinstance(result, dict):
        return []
    return sorted(name for name, verdict in result.items()
                  if isinstance(verdict, dict) and verdict.get("filtered"))


class AzureOpenAIAdapter(OpenAICompatibleAdapter):
    """OpenAI's format at Azure's deployment URLs, with Azure's auth header and errors."""

    def __init__(self) -> None:
        super().__init__("azure", auth_header="api-key", auth_scheme="")

    def url(self, deployment: Deployment, body: JobBody) -> str:
        """The deployment URL with its api-version."""
        base = deployment.base_url.rstrip("/").removesuffix("/openai")
        path = self.chat_path if body.kind == "chat" else self.embeddings_path
        version = quote(deployment.api_version or DEFAULT_API_VERSION, safe="")
        name = quote(deployment.model, safe="")
        return f"{base}/openai/deployments/{name}{path}?api-version={version}"

    def payload(self, deployment: Deployment, body: JobBody) -> dict[str, Any]:
        """OpenAI's body; the deployment in the URL names the model."""
        data = super().payload(deployment, body)
        del data["model"]
        return data

    def parse_reply(self, deployment: Deployment, body: JobBody, reply: HttpReply) -> UpstreamReply:
        """Turn a 2xx reply into the unified response; raise UpstreamBadResponse if unreadable."""
        parsed = super().parse_reply(deployment, body, reply)
        parsed.response.pop("prompt_filter_results", None)
        for choice in parsed.response.get("choices") or []:
            if isinstance(choice, dict):
                choice.pop("content_filter_results", None)
        return parsed

    def map_error(self, reply: HttpReply) -> UpstreamError:
        """The broker error for a non-2xx reply, naming filtered categories on content_filter."""
        error = super().map_error(reply)
        categories = filtered_categories(reply.content) if reply.status == 400 else None
        if categories is None:
            return error
        named = f" (filtered: {', '.join(categories)})" if categories else ""
        return UpstreamRejected(f"{error.message}{named}", status=reply.status,
                                detail=CONTENT_FILTER)


register(AzureOpenAIAdapter())
