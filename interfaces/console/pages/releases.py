"""Releases: several prompts to one label in one step (previewed first, so each move carries the
version the author saw as its compare-and-set expectation), a release, and its rollback."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from domain.errors import DomainError, NotFound
from domain.values import clean_prompt_name
from interfaces.console.pages.common import attempt, org_url, settle, status_for
from interfaces.console.rendering import redirect, render
from interfaces.console.session import Form, FormDep, OrgPage, ReadPage
from interfaces.http.deps import ContainerDep, RequestId, parse_id
from interfaces.http.routers.releases import release_view

router = APIRouter(prefix="/orgs/{org_id}/releases")
MAX_LINES = 100


def _lines(text: str) -> tuple[list[tuple[str, int]], list[str]]:
    """`name version` per line -> moves, and the lines that could not be read."""
    moves, bad = [], []
    for line in text.splitlines()[:MAX_LINES]:
        parts = line.strip().rsplit(None, 1)
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("v").isdigit():
            bad.append(line.strip())
            continue
        moves.append((parts[0], int(parts[1].lstrip("v"))))
    return moves, bad


@router.get("")
def releases(request: Request, scope: ReadPage, container: ContainerDep) -> Response:
    rows = [release_view(r) for r in container.releases.list(str(scope.org_id), limit=100)]
    return render(request, "releases.html", scope=scope, rows=rows, label="", lines="", reason="")


@router.post("/preview")
def preview(request: Request, form: FormDep, scope: OrgPage, container: ContainerDep) -> Response:
    """Each named prompt with what the label points at now: the expectations the release will carry."""
    org = str(scope.org_id)
    label, lines, reason = form.get("label").strip().lower(), form.get("lines"), form.get("reason")
    moves, bad = _lines(lines)
    rows, problems = [], [f"cannot read the line {b!r} (expected: name version)" for b in bad]
    for name, version in moves:
        try:
            found = container.catalogue.fetch(org, clean_prompt_name(name))
        except DomainError:
            found = None
        if found is None:
            problems.append(f"no prompt named {name!r}")
            continue
        current = container.catalogue.get(org, found["prompt_id"])
        rows.append({"prompt_id": found["prompt_id"], "name": found["name"], "version": version,
                     "expected": current["labels"].get(label, 0) if current else 0,
                     "latest": found["latest_version"]})
    listed = [release_view(r) for r in container.releases.list(org, limit=100)]
    if problems or not rows or not label:
        problems += [] if label else ["name the label"]
        return render(request, "releases.html", scope=scope, status=422, rows=listed, label=label, lines=lines,
                      reason=reason, problems=problems or ["name at least one prompt"])
    return render(request, "release_preview.html", scope=scope, label=label, moves=rows, reason=reason,
                  protected=label in scope.grant.org.protected_labels)


def _moves(form: Form) -> list[dict]:
    count = min(form.int("count", 0) or 0, MAX_LINES)
    return [{"prompt_id": form.get(f"prompt_{i}"), "version": form.int(f"version_{i}"),
             "expected_version": form.int(f"expected_{i}", 0)} for i in range(count)]


@router.post("")
def create_release(request: Request, form: FormDep, scope: OrgPage, container: ContainerDep,
                   rid: RequestId) -> Response:
    label = form.get("label")
    try:
        result, error = attempt(container.app.create_release, scope.principal, scope.org_id, label=label,
                                moves=_moves(form), reason=form.get("reason"), request_id=rid)
    except NotFound as exc:
        result, error = None, exc
    if error is not None:
        listed = [release_view(r) for r in container.releases.list(str(scope.org_id), limit=100)]
        conflicts = error.details.get("conflicts") or []
        problems = [error.message] + [f"{c.get('name')}: {label} now points at v{c.get('current_version')}, "
                                      f"not v{c.get('expected_version')}" for c in conflicts]
        return render(request, "releases.html", scope=scope, status=status_for(error), rows=listed, label=label,
                      lines="", reason=form.get("reason"), problems=problems)
    settle(container, result.position)
    if result.data.get("review_id"):
        return redirect(org_url(scope, "reviews", result.data["review_id"]), done="review_requested")
    return redirect(org_url(scope, "releases", result.data["release_id"]), done="released")


def _release(container, scope, release_id: str):
    row = container.releases.get(str(scope.org_id), str(parse_id(release_id, "RELEASE_NOT_FOUND", "release")))
    if row is None:
        raise NotFound("release not found", code="RELEASE_NOT_FOUND")
    return release_view(row)


@router.get("/{release_id}")
def release_page(request: Request, scope: ReadPage, release_id: str, container: ContainerDep) -> Response:
    return render(request, "release.html", scope=scope, release=_release(container, scope, release_id))


@router.post("/{release_id}/rollback")
def rollback(request: Request, form: FormDep, scope: OrgPage, release_id: str, container: ContainerDep,
             rid: RequestId) -> Response:
    target = parse_id(release_id, "RELEASE_NOT_FOUND", "release")
    result, error = attempt(container.app.rollback_release, scope.principal, scope.org_id, target, rid,
                            reason=form.get("reason"))
    if error is not None:
        return render(request, "release.html", scope=scope, status=status_for(error), error=error.message,
                      release=_release(container, scope, release_id))
    settle(container, result.position)
    if result.data.get("review_id"):
        return redirect(org_url(scope, "reviews", result.data["review_id"]), done="review_requested")
    return redirect(org_url(scope, "releases", result.data["release_id"]), done="rolled_back")
