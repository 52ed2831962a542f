"""Search: semantic, keyword or hybrid (reciprocal-rank fusion) within one organisation."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, StrictInt

from interfaces.http.schemas.common import RequestModel, ResponseModel


class SearchIn(RequestModel):
    """What to look for. `hybrid` fuses the semantic and keyword rankings (reciprocal-rank fusion)."""

    query: str = Field(min_length=1, max_length=500, examples=["answer customer refund questions politely"])
    mode: Literal["hybrid", "semantic", "keyword"] = "hybrid"
    limit: StrictInt = Field(10, ge=1, le=50)
    tags: list[str] = Field(default_factory=list, max_length=8, description="results carry all of these tags")
    label: str | None = Field(None, max_length=64, description="results have this label set")
    include_archived: StrictBool = False


class SearchHit(ResponseModel):
    prompt_id: str
    name: str
    score: float
    ranks: dict[str, int]
    latest_version: int
    tags: list[str]
    labels: dict[str, int]
    archived: bool


class SearchOut(ResponseModel):
    mode: str
    degraded: bool = False
    notice: str | None = None
    items: list[SearchHit]


class SimilarOut(ResponseModel):
    prompt_id: str
    items: list[SearchHit]
