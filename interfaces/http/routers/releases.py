"""Releases: several prompts to one label in one atomic step, and rollback as one step."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from domain.errors import NotFound
from interfaces.http.deps import ContainerDep, MemberScope, ReadScope, RequestId, command_headers, fresh, parse_id
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.governance import ReleaseCreated, ReleaseIn, ReleaseList, ReleaseOut, RollbackIn

router = APIRouter(prefix="/v1/orgs/{org_id}/releases", tags=["releases"], responses=ERRORS)


def release_view(row: dict[str, Any]) -> ReleaseOut:
    return ReleaseOut(id=row["release_id"], **{k: row[k] for k in (
        "label", "moves", "reason", "review_id", "rollback_of", "rolled_back_by", "created_at", "created_by", "position")})


def _created(response: Response, result) -> ReleaseCreated:
    command_headers(response, result.position)
    if result.data.get("review_id"):
        response.status_code = 202
        return ReleaseCreated(review_id=result.data["review_id"], status="review_requested",
                              position=result.position or 0)
    return ReleaseCreated(release_id=result.data["release_id"], status="applied", position=result.position or 0)


@router.post("", status_code=201, response_model=ReleaseCreated, summary="Move a label of several prompts at once",
             responses={202: {"description": "The label is protected: a review request was opened instead"}})
def create_release(scope: MemberScope, body: ReleaseIn, response: Response, container: ContainerDep,
                   rid: RequestId) -> ReleaseCreated:
    """All moves apply in one save or none does: one stale `expected_version` is 409
    `RELEASE_CONFLICT` listing every conflicting prompt. On a protected label, a review request of the
    whole release is opened (202); its approval applies it as one."""
    moves = [{"prompt_id": m.prompt_id, "name": m.name, "version": m.version,
              "split": [e.model_dump() for e in m.split] if m.split is not None else None,
              "expected_version": m.expected_version} for m in body.moves]
    result = container.app.create_release(scope.principal, scope.org_id, label=body.label, moves=moves,
                                          reason=body.reason, request_id=rid)
    return _created(response, result)


@router.get("", response_model=ReleaseList, summary="Releases (newest first)")
def list_releases(scope: ReadScope, _: fresh("releases"), container: ContainerDep,
                  label: Annotated[str | None, Query(max_length=64)] = None,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> ReleaseList:
    return ReleaseList(items=[release_view(r) for r in container.releases.list(str(scope.org_id), label=label,
                                                                               limit=limit)])


@router.get("/{release_id}", response_model=ReleaseOut, summary="A release")
def get_release(scope: ReadScope, _: fresh("releases"), release_id: str, container: ContainerDep) -> ReleaseOut:
    row = container.releases.get(str(scope.org_id), str(parse_id(release_id, "RELEASE_NOT_FOUND", "release")))
    if row is None:
        raise NotFound("release not found", code="RELEASE_NOT_FOUND")
    return release_view(row)


@router.post("/{release_id}/rollback", status_code=201, response_model=ReleaseCreated,
             summary="Roll a release back as one step", responses={202: {"description": "Via a review request"}})
def rollback(scope: MemberScope, release_id: str, body: RollbackIn, response: Response, container: ContainerDep,
             rid: RequestId) -> ReleaseCreated:
    """Every label back to what it pointed at before the release, expecting what the release set
    (a later move is never overwritten: 409 `RELEASE_CONFLICT`). Protected label: via review (202)."""
    result = container.app.rollback_release(scope.principal, scope.org_id,
                                            parse_id(release_id, "RELEASE_NOT_FOUND", "release"), rid,
                                            reason=body.reason)
    return _created(response, result)
