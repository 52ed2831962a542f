"""PromptForge client: cached prompt fetches that are never stale for long, local rendering with the
server's exact semantics, coherent mode over the change feed, the write side, prompts as code."""
from promptforge_client.aio import AsyncClient
from promptforge_client.client import Client
from promptforge_client.errors import (
    ApiError, PromptForgeError, RenderError, ServerUnavailable, TransportError,
)
from promptforge_client.models import (
    Change, ChangePage, Dependency, LabelMoved, Prompt, PromptCreated, PromptPage, PromptSummary, ReviewRequest,
    SearchHit, SearchResult, VersionCreated,
)

__version__ = "0.1.0"

__all__ = [
    "Client", "AsyncClient", "Prompt", "Dependency", "PromptForgeError", "ApiError", "RenderError",
    "ServerUnavailable", "TransportError", "PromptCreated", "VersionCreated", "LabelMoved", "ReviewRequest",
    "PromptSummary", "PromptPage", "SearchHit", "SearchResult", "Change", "ChangePage", "__version__",
]
