"""The change feed."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from interfaces.http.schemas.common import Instant, ResponseModel


class ChangeOut(ResponseModel):
    position: int = Field(description="The change's log position: the cursor, and the SSE event id.")
    at: Instant
    type: str = Field(description="Public vocabulary: prompt.created, prompt.revised, prompt.label_moved, …")
    audience: str = Field(description="`prompts` (prompts:read) or `audit` (audit:read)")
    prompt_id: str | None
    name: str | None = Field(description="The prompt's name when the change happened.")
    version: int | None
    label: str | None
    actor: str
    details: dict[str, Any]


class ChangePage(ResponseModel):
    items: list[ChangeOut]
    next: int = Field(description="Pass as `after` for the next page (the same cursor when the page is empty).")
