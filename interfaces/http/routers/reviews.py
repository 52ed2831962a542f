"""Review requests: the four-eyes path for protected labels (application.governance)."""
from __future__ import annotations

import difflib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from domain.errors import NotFound
from interfaces.http.deps import ContainerDep, MemberScope, ReadScope, RequestId, command_headers, fresh, parse_id
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.governance import (
    Decision, MoveOut, ReviewCreated, ReviewDecided, ReviewList, ReviewOut, ReviewRequestIn,
)

router = APIRouter(prefix="/v1/orgs/{org_id}/review-requests", tags=["reviews"], responses=ERRORS)


def review_id_of(value: str):
    return parse_id(value, "REVIEW_NOT_FOUND", "review request")


def _lines(text: str) -> list[str]:
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(keepends=True)]


def _diff(container, org_id: str, move: dict[str, Any], current: dict[str, Any] | None) -> str | None:
    """From the label's current version to the proposed one (the catalogue's versions)."""
    proposed = move.get("version") or (max(move["split"], key=lambda e: e["weight"])["version"] if move.get("split") else None)
    if proposed is None:
        return None
    new = container.catalogue.version(org_id, move["prompt_id"], proposed)
    old = container.catalogue.version(org_id, move["prompt_id"], current["version"]) if current else None
    def text(row):
        if row is None:
            return ""
        return row["template"] if row["type"] == "text" else "\n".join(
            f"[{m.get('role', m.get('type'))}] {m.get('content', m.get('name', ''))}" for m in row["messages"] or [])
    a = f"v{current['version']}" if current else "(unset)"
    return "".join(difflib.unified_diff(_lines(text(old)), _lines(text(new)), fromfile=a, tofile=f"v{proposed}"))


def review_view(container, org_id: str, row: dict[str, Any], with_diff: bool = False) -> ReviewOut:
    moves = []
    for move in row["moves"]:
        current = None
        if with_diff:
            prompt = container.catalogue.get(org_id, move["prompt_id"])
            if prompt and row["label"] in prompt["labels"]:
                current = {"version": prompt["labels"][row["label"]], "split": prompt["splits"].get(row["label"])}
        moves.append(MoveOut(prompt_id=move["prompt_id"], name=move["name"], version=move.get("version"),
                             split=move.get("split"), expected_version=move.get("expected_version"),
                             current=current if with_diff else None,
                             diff=_diff(container, org_id, move, current) if with_diff else None))
    return ReviewOut(id=row["review_id"], moves=moves, **{k: row[k] for k in (
        "kind", "label", "status", "reason", "requested_by", "requester", "approvals_required", "approver_roles",
        "approvals", "decided_by", "comment", "conflicts", "release_id", "created_at", "updated_at", "position")})


@router.post("", status_code=201, response_model=ReviewCreated, summary="Request a change of a protected label")
def request_review(scope: MemberScope, body: ReviewRequestIn, response: Response, container: ContainerDep,
                   rid: RequestId) -> ReviewCreated:
    """Needs prompts:promote. "Point `production` of P at version 7, expecting version 5 now": the
    expectation is checked now (409 `LABEL_CONFLICT`) and again when approved. Only for protected
    labels (409 `LABEL_NOT_PROTECTED` otherwise: move it directly)."""
    split = [e.model_dump() for e in body.split] if body.split is not None else None
    result = container.app.request_review(scope.principal, scope.org_id, prompt_id=body.prompt_id, label=body.label,
                                          version=body.version, split=split, expected_version=body.expected_version,
                                          reason=body.reason, request_id=rid, remove=body.remove)
    command_headers(response, result.position)
    return ReviewCreated(id=str(result.id), status="open", position=result.position or 0)


@router.get("", response_model=ReviewList, summary="Review requests (newest first)")
def list_reviews(scope: ReadScope, _: fresh("reviews"), container: ContainerDep,
                 status: Annotated[str | None, Query(max_length=16, description=(
                     "open | applied | rejected | withdrawn | superseded"))] = None,
                 prompt_id: Annotated[str | None, Query(max_length=36)] = None,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50) -> ReviewList:
    rows = container.reviews.list(str(scope.org_id), status=status, prompt_id=prompt_id, limit=limit)
    return ReviewList(items=[review_view(container, str(scope.org_id), r) for r in rows])


@router.get("/{review_id}", response_model=ReviewOut, summary="A review request, with the diff of each move")
def get_review(scope: ReadScope, _: fresh("reviews", "catalogue"), review_id: str,
               container: ContainerDep) -> ReviewOut:
    row = container.reviews.get(str(scope.org_id), str(review_id_of(review_id)))
    if row is None:
        raise NotFound("review request not found", code="REVIEW_NOT_FOUND")
    return review_view(container, str(scope.org_id), row, with_diff=True)


@router.post("/{review_id}/approve", response_model=ReviewDecided, summary="Approve (applies it at the quorum)")
def approve(scope: MemberScope, review_id: str, body: Decision, response: Response, container: ContainerDep,
            rid: RequestId) -> ReviewDecided:
    """Needs prompts:review and an approving role; never the requester (nor a key they issued):
    403 `SELF_APPROVAL`. The approval reaching the quorum applies the change in the same atomic save;
    if a label moved since the request, nothing is applied and the request is superseded (409
    `REVIEW_SUPERSEDED` with the conflicts)."""
    result = container.app.approve_review(scope.principal, scope.org_id, review_id_of(review_id), body.comment, rid)
    command_headers(response, result.position)
    return ReviewDecided(id=str(result.id), status=result.data["status"], release_id=result.data.get("release_id"),
                         position=result.position or 0)


@router.post("/{review_id}/reject", response_model=ReviewDecided, summary="Reject with a comment")
def reject(scope: MemberScope, review_id: str, body: Decision, response: Response, container: ContainerDep,
           rid: RequestId) -> ReviewDecided:
    result = container.app.reject_review(scope.principal, scope.org_id, review_id_of(review_id), body.comment, rid)
    command_headers(response, result.position)
    return ReviewDecided(id=str(result.id), status=result.data["status"], position=result.position or 0)


@router.post("/{review_id}/withdraw", response_model=ReviewDecided, summary="Withdraw your own request")
def withdraw(scope: MemberScope, review_id: str, response: Response, container: ContainerDep,
             rid: RequestId) -> ReviewDecided:
    result = container.app.withdraw_review(scope.principal, scope.org_id, review_id_of(review_id), rid)
    command_headers(response, result.position)
    return ReviewDecided(id=str(result.id), status=result.data["status"], position=result.position or 0)
