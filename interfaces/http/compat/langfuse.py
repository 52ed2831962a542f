"""Langfuse's public prompt API over PromptForge (adr/0015): `langfuse.get_prompt(...)` unchanged.

    GET   /api/public/v2/prompts/{name}                    a version by label (default production) or number
    GET   /api/public/v2/prompts                           the prompts, with versions and labels (paged)
    POST  /api/public/v2/prompts                           a new version of the prompt named (created when absent)
    PATCH /api/public/v2/prompts/{name}/versions/{version} labels moved to that version (`newLabels`)
    GET   /api/public/projects                             the key's organisation, as Langfuse's project
    anything else under /api/public                        404 (405 on a known path), "not supported"

Translation only: writes are the application's commands (create_prompt, revise_prompt, move_label,
request_review), reads the catalogue read model or the application's reads, so permissions, protected
labels, tenancy, rate limits, audit and the change feed hold as on `/v1`. A label the organisation
protects is never moved from here: its move becomes a review request (the answer names it in
`X-PromptForge-Review-Request`), applied when approved at `/v1/orgs/{org_id}/review-requests`.
Not part of PromptForge's OpenAPI document (Langfuse's documents these routes).
"""
from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.routing import Match

from domain.errors import Conflict, DomainError, Invalid, NotFound
from domain.permissions import Permission
from domain.splits import pick
from domain.values import clean_label, clean_prompt_name
from interfaces.http.compat import langfuse_list
from interfaces.http.compat.langfuse_auth import project
from interfaces.http.compat.langfuse_errors import LangfuseError, LangfuseRoute, answer
from interfaces.http.compat.langfuse_views import (
    NewVersion, from_aggregate, labels_of, new_labels, new_version, prompt_out, resolution_graph,
)
from interfaces.http.deps import ContainerDep, RequestId
from interfaces.http.kit import MAX_VERSION, norm_label

router = APIRouter(prefix="/api/public", route_class=LangfuseRoute, include_in_schema=False)
DEFAULT_LABEL = "production"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
#: Tries of an append (`POST`) raced by another append to the same prompt.
APPEND_TRIES = 3


@router.get("/v2/prompts")
def list_prompts(
    request: Request, container: ContainerDep,
    name: Annotated[str | None, Query(max_length=200)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    page: Annotated[int, Query(ge=1, le=MAX_VERSION)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    from_updated_at: Annotated[str | None, Query(alias="fromUpdatedAt", max_length=64)] = None,
    to_updated_at: Annotated[str | None, Query(alias="toUpdatedAt", max_length=64)] = None,
) -> Any:
    scope = project(request, Permission.PROMPTS_READ)
    _caught_up(container)
    return langfuse_list.prompts_page(container, str(scope.org_id), name=name, label=norm_label(label), tag=tag,
                                      version=version, page=page, limit=limit, from_updated_at=from_updated_at,
                                      to_updated_at=to_updated_at)


@router.get("/v2/prompts/{name:path}")
def get_prompt(
    request: Request, name: str, container: ContainerDep,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    resolve: bool = True,
) -> Any:
    """Served from the catalogue read model, includes resolved (`resolve=false`: raw), once it has
    caught up with the log as of the request (`_caught_up`)."""
    scope = project(request, Permission.PROMPTS_READ)
    if version is not None and label is not None:
        raise LangfuseError(400, "Cannot specify both version and label")
    _caught_up(container)
    label = None if version is not None else (norm_label(label) or DEFAULT_LABEL)
    org = str(scope.org_id)
    row = _fetch(container, org, name, label, version)
    if row["split"]:  # as the /v1 fetch path without a split_key: a weighted pick
        picked = pick(row["split"], scope.org_id, row["prompt_id"], label, None)
        if picked != row["resolved"]:
            row = container.catalogue.fetch(org, row["name"], version=picked) or row
    pid, number = row["prompt_id"], row["resolved"]
    current, found = container.catalogue.get(org, pid), container.catalogue.version(org, pid, number)
    if current is None or found is None:
        raise _missing(name, label, version)
    content, graph = dict(found), None
    if resolve:
        composed = container.catalogue.compose(org, {**found, "name": current["name"], "resolved": number}, label)
        content.update(template=composed.template, messages=composed.messages)
        graph = resolution_graph(pid, current["name"], number, composed.dependencies)
    return prompt_out(name=current["name"], version=number, content=content, tags=current["tags"],
                      labels=labels_of(current["labels"], number, current["latest_version"]), graph=graph)


@router.post("/v2/prompts", status_code=201)
def create_prompt(request: Request, body: Annotated[Any, Body()], container: ContainerDep, rid: RequestId) -> Any:
    """A new version of the prompt named, or its version 1; `labels` then move to it (`latest` is
    automatic). Appends: a version raced by another append is retried on the new latest."""
    scope = project(request)
    new = new_version(body)
    labels = _wanted(new.labels, on_latest=True)  # a malformed label is refused before anything is written
    pid, number, positions = _append(container.app, scope, new, rid)
    reviews = _move_labels(container.app, scope, pid, number, labels, rid, positions,
                           reason=new.message or f"version {number}, via the Langfuse-compatible API")
    prompt = container.app.read_prompt(scope.principal, scope.org_id, pid, checked_head=scope.head)
    return _written(from_aggregate(prompt, number), 201, positions, reviews)


@router.patch("/v2/prompts/{name:path}/versions/{version}")
def update_prompt_version(request: Request, name: str, version: int, body: Annotated[Any, Body()],
                          container: ContainerDep, rid: RequestId) -> Any:
    """Every label of `newLabels` moves to the version (from wherever it pointed); the labels already
    on it stay, as in Langfuse."""
    scope = project(request)
    wanted = new_labels(body)
    pid = container.app.prompt_id_by_name(scope.principal, scope.org_id, name, checked_head=scope.head)
    prompt = container.app.read_prompt(scope.principal, scope.org_id, pid, checked_head=scope.head)
    prompt.get_version(version)  # 404 VERSION_NOT_FOUND
    labels = _wanted(wanted, on_latest=version == prompt.latest_version)
    positions: list[int] = []
    reviews = _move_labels(container.app, scope, pid, version, labels, rid, positions,
                           reason=f"version {version}, via the Langfuse-compatible API")
    prompt = container.app.read_prompt(scope.principal, scope.org_id, pid, checked_head=scope.head)
    return _written(from_aggregate(prompt, version), 200, positions, reviews)


@router.get("/projects")
def projects(request: Request) -> Any:
    """The key's organisation is its one project (Langfuse's `auth_check()` reads this)."""
    scope = project(request)
    org = {"id": str(scope.org_id), "name": scope.grant.org.name}
    return {"data": [{**org, "organization": dict(org), "metadata": {}}]}


@router.api_route("/{rest:path}", methods=METHODS)
def not_supported(request: Request, rest: str) -> Any:
    allowed = sorted({m for route in router.routes if route.name != "not_supported"
                      for m in getattr(route, "methods", ())
                      if route.matches({**request.scope, "method": m})[0] is Match.FULL})
    if allowed:
        return answer(405, f"{request.method} is not allowed here", {"Allow": ", ".join(allowed)})
    return answer(404, "PromptForge serves only Langfuse's prompt API (/api/public/v2/prompts and "
                      "/api/public/projects); tracing, ingestion and the rest are not supported")


# -- helpers ----------------------------------------------------------------------------------------

def _missing(name: str, label: str | None, version: int | None) -> LangfuseError:
    which = f"with version {version}" if version is not None else f"with label '{label}'"
    return LangfuseError(404, f"Prompt not found: '{name}' {which}")


def _caught_up(container) -> None:
    """Read your writes without a position to pass: Langfuse clients cannot send `min_position`, so
    reads wait (at most PROMPTFORGE_QUERY_WAIT_SECONDS) for the catalogue to reach the head of the log
    as it is when the request arrives; after that bound they answer from the catalogue as it is."""
    container.supervisor.wait_for(container.app.head_position(), container.settings.query_wait_seconds, ["catalogue"])


def _fetch(container, org: str, name: str, label: str | None, version: int | None) -> dict[str, Any]:
    try:
        row = container.catalogue.fetch(org, clean_prompt_name(name), label=label, version=version)
    except Invalid:
        row = None
    if row is None or row["resolved"] is None or row["template"] is None:  # no prompt, label or version
        raise _missing(name, label, version)
    return row


def _append(app, scope, new: NewVersion, rid: str) -> tuple[UUID, int, list[int]]:
    """(prompt id, version number, positions): create_prompt when the name is free, else
    revise_prompt on the latest version."""
    for attempt in range(1, APPEND_TRIES + 1):
        try:
            pid = app.prompt_id_by_name(scope.principal, scope.org_id, new.name, checked_head=scope.head)
        except NotFound:
            pid = None
        content = dict(template=new.template, messages=new.messages, template_format=new.template_format,
                       model_config=new.model_config, message=new.message, request_id=rid)
        try:
            if pid is None:
                result = app.create_prompt(scope.principal, scope.org_id, name=new.name, type=new.type,
                                           tags=new.tags or [], checked_head=scope.head, **content)
            else:
                latest = app.read_prompt(scope.principal, scope.org_id, pid, checked_head=scope.head).latest_version
                result = app.revise_prompt(scope.principal, scope.org_id, pid, base_version=latest, tags=new.tags,
                                           checked_head=scope.head, **content)
        except Conflict as exc:
            if exc.code in ("PROMPT_NAME_TAKEN", "PROMPT_VERSION_CONFLICT") and attempt < APPEND_TRIES:
                continue
            raise
        return result.id, result.version, [result.position] if result.position else []
    raise AssertionError("unreachable")  # pragma: no cover


def _wanted(labels: list[str], on_latest: bool) -> list[str]:
    """The labels to move, cleaned (400 for a malformed one). `latest` is automatic: skipped when the
    version is the latest, refused elsewhere (LABEL_RESERVED)."""
    return list(dict.fromkeys(clean_label(label) for label in labels
                              if not (on_latest and label.strip().lower() == "latest")))


def _move_labels(app, scope, pid: UUID, version: int, labels: list[str], rid: str, positions: list[int],
                 reason: str) -> list[str]:
    """Move each label (last write wins, as in Langfuse); a protected one becomes a review request.
    Returns the review request ids. A refusal names the version and what was already applied."""
    reviews: list[str] = []
    done: list[str] = []
    for label in labels:
        try:
            try:
                result = app.move_label(scope.principal, scope.org_id, pid, label, version, rid,
                                        checked_head=scope.head)
                done.append(label)
            except Conflict as exc:
                if exc.code != "LABEL_PROTECTED":
                    raise
                current = app.read_prompt(scope.principal, scope.org_id, pid, checked_head=scope.head).labels.get(label)
                if current == version:
                    continue
                result = app.request_review(scope.principal, scope.org_id, prompt_id=pid, label=label,
                                            version=version, expected_version=current or 0, reason=reason,
                                            request_id=rid)
                reviews.append(str(result.id))
        except DomainError as exc:
            exc.message = (f"{exc.message} [while moving label {label!r} to version {version}, which is saved; "
                           f"labels moved before: {done or 'none'}; review requests opened: {reviews or 'none'}]")
            raise
        if result.position:
            positions.append(result.position)
    return reviews


def _written(content: dict[str, Any], status: int, positions: list[int], reviews: list[str]) -> Response:
    headers = {}
    if positions:
        headers["X-Event-Position"] = str(max(positions))
    if reviews:
        headers["X-PromptForge-Review-Request"] = ", ".join(reviews)
    return JSONResponse(content, status_code=status, headers=headers)
