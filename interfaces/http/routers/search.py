"""Search within an organisation (prompts:read): semantic, keyword or hybrid, and similar prompts.

Keyword results follow the catalogue (`min_position` applies); semantic results also wait (bounded)
for the embedding of new versions, which lags a little further, and say so (`degraded`) when it does. Without a vector index, hybrid degrades to
keyword results (`degraded: true`) and semantic/similar answer 503 `SEARCH_UNAVAILABLE`."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from interfaces.http.deps import ContainerDep, ReadScope, fresh
from interfaces.http.errors import ApiError
from interfaces.http.kit import prompt_id_of
from interfaces.http.routers.prompts import require_prompt
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.search import SearchHit, SearchIn, SearchOut, SimilarOut
from projections.search import SemanticSearchUnavailable

router = APIRouter(prefix="/v1/orgs/{org_id}", tags=["search"], responses=ERRORS)


def _hits(results) -> list[SearchHit]:
    return [SearchHit(prompt_id=r.prompt_id, name=r.row["name"], score=r.score, ranks=r.ranks,
                      latest_version=r.row["latest_version"], tags=r.row["tags"],
                      labels={**r.row["labels"], "latest": r.row["latest_version"]},
                      archived=bool(r.row["archived"]))
            for r in results]


def _unavailable() -> ApiError:
    return ApiError(503, "SEARCH_UNAVAILABLE", "semantic search is unavailable; keyword search still works",
                    headers={"Retry-After": "5"})


@router.post("/prompts/search", response_model=SearchOut, summary="Search prompts (hybrid, semantic or keyword)")
def search(scope: ReadScope, wanted: fresh("catalogue"), request: Request, body: SearchIn) -> SearchOut:
    """A query, not a command: POST only because the request has a body. Ranked prompts with their
    score, the rank each ranking gave them, and the matched (latest) version. With `min_position`,
    semantic and hybrid results also wait (bounded) for the vector index; if it is still behind, or
    behind the catalogue, the answer says `degraded: true` with a notice."""
    try:
        found = request.app.state.search.search(
            str(scope.org_id), body.query, body.mode, body.limit, tags=[t.strip().lower() for t in body.tags],
            label=body.label.strip().lower() if body.label else None, include_archived=body.include_archived,
            min_position=wanted)
    except SemanticSearchUnavailable:
        raise _unavailable() from None
    return SearchOut(mode=found.mode, degraded=found.degraded, notice=found.notice, items=_hits(found.results))


@router.get("/prompts/{prompt_id}/similar", response_model=SimilarOut, summary="Prompts similar to this one")
def similar(scope: ReadScope, _: fresh("catalogue"), prompt_id: str, request: Request, container: ContainerDep,
            limit: Annotated[int, Query(ge=1, le=50)] = 10) -> SimilarOut:
    pid = prompt_id_of(prompt_id)
    require_prompt(container, scope.org_id, pid)
    try:
        found = request.app.state.search.similar(str(scope.org_id), str(pid), limit)
    except SemanticSearchUnavailable:
        raise _unavailable() from None
    if found is None:
        raise ApiError(503, "VECTOR_PENDING", "this prompt has not been embedded yet", headers={"Retry-After": "1"})
    return SimilarOut(prompt_id=str(pid), items=_hits(found))
