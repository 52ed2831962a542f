"""Review requests: ask for a protected label's change, the reviewers' inbox, a request with the
side-by-side diff of each move, approve / reject with a comment, withdraw."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from domain.errors import NotFound
from interfaces.console import diffing
from interfaces.console.pages.common import attempt, org_url, settle, status_for
from interfaces.console.pages.prompts import refused_on_prompt_page
from interfaces.console.rendering import redirect, render
from interfaces.console.session import FormDep, OrgPage, ReadPage, Refused
from interfaces.http.deps import ContainerDep, RequestId
from interfaces.http.kit import prompt_id_of
from interfaces.http.routers.reviews import review_id_of, review_view

router = APIRouter(prefix="/orgs/{org_id}/reviews")
STATUSES = ("open", "applied", "rejected", "withdrawn", "superseded")


@router.post("")
def request_review(request: Request, form: FormDep, scope: OrgPage, container: ContainerDep,
                   rid: RequestId) -> Response:
    prompt_id = form.get("prompt_id")
    pid = prompt_id_of(prompt_id)
    label = form.get("label").strip()
    result, error = attempt(container.app.request_review, scope.principal, scope.org_id, prompt_id=pid, label=label,
                            version=form.int("version"), expected_version=form.int("expected_version", 0),
                            reason=form.get("reason"), request_id=rid, remove=form.get("remove") == "1")
    if error is not None:
        return refused_on_prompt_page(request, scope, container, prompt_id, error, label)
    settle(container, result.position)
    return redirect(org_url(scope, "reviews", result.id), done="review_requested")


@router.get("")
def inbox(request: Request, scope: ReadPage, container: ContainerDep,
          status: Annotated[str | None, Query(max_length=16)] = "open") -> Response:
    status = status if status in STATUSES else None
    rows = container.reviews.list(str(scope.org_id), status=status, limit=100)
    return render(request, "reviews.html", scope=scope, rows=rows, selected=status, statuses=STATUSES)


def _moves(container, org: str, review) -> list[dict]:
    """Each move with the side-by-side diff from what the label points at now to what is proposed."""
    out = []
    for move in review.moves:
        proposed = move.version or (max(move.split, key=lambda e: e["weight"])["version"] if move.split else None)
        current = move.current["version"] if move.current else None
        new = container.catalogue.version(org, move.prompt_id, proposed) if proposed else None
        old = container.catalogue.version(org, move.prompt_id, current) if current else None
        empty = {"type": (new or old or {}).get("type", "text"), "template": "", "messages": []}
        diff = diffing.versions(old or empty, new or empty)
        if old is None:  # the label is unset: its fields are all new, nothing to compare them with
            diff["fields"] = {}
        out.append({"move": move, "proposed": proposed, "current": current, "diff": diff})
    return out


def review_page_context(container, scope, review_id: str) -> dict:
    org = str(scope.org_id)
    row = container.reviews.get(org, str(review_id_of(review_id)))
    if row is None:
        raise NotFound("review request not found", code="REVIEW_NOT_FOUND")
    review = review_view(container, org, row, with_diff=True)
    return {"review": review, "moves": _moves(container, org, review)}


@router.get("/{review_id}")
def review_page(request: Request, scope: ReadPage, review_id: str, container: ContainerDep) -> Response:
    return render(request, "review.html", scope=scope, **review_page_context(container, scope, review_id))


@router.post("/{review_id}/decide")
def decide(request: Request, form: FormDep, scope: OrgPage, review_id: str, container: ContainerDep,
           rid: RequestId) -> Response:
    target = review_id_of(review_id)
    decision, comment = form.get("decision"), form.get("comment")
    if decision == "approve":
        result, error = attempt(container.app.approve_review, scope.principal, scope.org_id, target, comment, rid)
    elif decision == "reject":
        result, error = attempt(container.app.reject_review, scope.principal, scope.org_id, target, comment, rid)
    elif decision == "withdraw":
        result, error = attempt(container.app.withdraw_review, scope.principal, scope.org_id, target, rid)
    else:  # never guess: a form without a known decision (a typo, a missing button) changes nothing
        raise Refused(400, "Choose to approve, reject or withdraw the request.")
    if error is not None:
        settle(container, error.details.get("position"))  # a superseded request is saved as such
        return render(request, "review.html", scope=scope, status=status_for(error), error=error.message,
                      comment=comment, **review_page_context(container, scope, review_id))
    settle(container, result.position)
    status = result.data.get("status")
    done = {"applied": "applied", "rejected": "rejected", "withdrawn": "withdrawn"}.get(status, "approved")
    return redirect(org_url(scope, "reviews", target), done=done)
