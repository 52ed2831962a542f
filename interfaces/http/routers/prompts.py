"""Prompts: create, list, fetch by name (the hot path), read (now or as of a time), archive/restore, render."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response

from domain.errors import Invalid, NotFound
from domain.prompt import Prompt
from domain.values import clean_name
from interfaces.http.deps import (
    ContainerDep, IdempotencyKey, MemberScope, ReadScope, RequestId, command_headers, fresh, parse_id,
)
from interfaces.http.errors import ApiError
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.prompts import (
    ArchiveOut, FetchOut, PromptCreate, PromptCreated, PromptList, PromptOut, PromptSummary, RenderOut, RenderRequest,
)
from interfaces.http.timeparse import parse_instant

router = APIRouter(prefix="/v1/orgs/{org_id}/prompts", tags=["prompts"], responses=ERRORS)
PROMPT_NOT_FOUND = "PROMPT_NOT_FOUND"
AsOf = Annotated[str | None, Query(max_length=64, description="RFC 3339 instant, e.g. 2025-01-31T12:00:00Z: "
                                   "answer from the event stream as of that moment")]


def prompt_id_of(value: str):
    return parse_id(value, PROMPT_NOT_FOUND, "prompt")


def etag(prompt_id: Any, version: int) -> str:
    """The validator of one version's content (by-name fetch, versions): it changes with the version."""
    return f'"{prompt_id}:{version}"'


def prompt_etag(row: dict[str, Any]) -> str:
    """The validator of a prompt's whole representation (labels, archived flag included): it also
    changes with the position of the last event folded into the row. `If-Match` on a revision
    compares the version it names."""
    return f'"{row["prompt_id"]}:{row["latest_version"]}:{row["position"]}"'


def etag_matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or tag in candidates


def norm_label(label: str | None) -> str | None:
    return label.strip().lower() if label is not None else None


def require_prompt(container, org_id, prompt_id) -> dict[str, Any]:
    row = container.catalogue.get(str(org_id), str(prompt_id))
    if row is None:
        raise NotFound("prompt not found", code=PROMPT_NOT_FOUND)
    return row


def aggregate_view(prompt: Prompt, as_of=None) -> PromptOut:
    latest = prompt.versions[-1]
    return PromptOut(
        id=str(prompt.id), name=prompt.name, latest_version=prompt.latest_version, template=latest["template"],
        variables=list(latest["variables"]), model_settings=dict(latest["model_config"]), tags=list(latest["tags"]),
        labels={**prompt.labels, "latest": prompt.latest_version}, archived=prompt.archived,
        created_at=prompt.created_on, updated_at=prompt.modified_on, as_of=as_of,
    )


def row_view(row: dict[str, Any]) -> PromptOut:
    return PromptOut(
        id=row["prompt_id"], name=row["name"], latest_version=row["latest_version"], template=row["template"],
        variables=row["variables"], model_settings=row["model_config"], tags=row["tags"],
        labels={**row["labels"], "latest": row["latest_version"]}, archived=row["archived"],
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


@router.post("", status_code=201, response_model=PromptCreated, summary="Create a prompt (version 1)")
def create_prompt(scope: MemberScope, body: PromptCreate, response: Response, container: ContainerDep,
                  rid: RequestId, idempotency_key: IdempotencyKey) -> PromptCreated:
    """Needs prompts:write. Names are unique per organisation (409 `PROMPT_NAME_TAKEN`)."""
    result = container.app.create_prompt(
        scope.principal, scope.org_id, name=body.name, template=body.template, variables=body.variables,
        model_config=body.model_settings, tags=body.tags, message=body.message, request_id=rid,
        idempotency_key=idempotency_key,
    )
    command_headers(response, result.position, result.replayed)
    response.headers["ETag"] = etag(result.id, 1)
    return PromptCreated(id=str(result.id), name=clean_name(body.name), version=1, position=result.position or 0)


@router.get("", response_model=PromptList, summary="List prompts (cursor pagination, filters, sort)")
def list_prompts(
    scope: ReadScope, _: fresh("catalogue"), container: ContainerDep,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    name_prefix: Annotated[str | None, Query(max_length=200)] = None,
    archived: Annotated[Literal["false", "true", "all"], Query()] = "false",
    sort: Annotated[str, Query(max_length=16, description="name | -name | updated_at | -updated_at | "
                                                         "created_at | -created_at")] = "name",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> PromptList:
    page = container.catalogue.list(
        str(scope.org_id), tag=tag, label=norm_label(label), name_prefix=name_prefix,
        archived=None if archived == "all" else archived == "true", sort=sort, limit=limit, cursor=cursor,
    )
    return PromptList(items=[PromptSummary(
        id=r["prompt_id"], name=r["name"], latest_version=r["latest_version"], tags=r["tags"],
        labels={**r["labels"], "latest": r["latest_version"]}, archived=r["archived"], created_at=r["created_at"],
        updated_at=r["updated_at"]) for r in page.items], next_cursor=page.next_cursor)


@router.get("/by-name/{name}", response_model=FetchOut, summary="Fetch by name + label or version (hot path)",
            responses={304: {"description": "Not modified (If-None-Match matched the ETag)"}})
def fetch_by_name(
    scope: ReadScope, _: fresh("catalogue"), name: str, container: ContainerDep,
    label: Annotated[str | None, Query(max_length=64, description="Default `latest`")] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    as_of: AsOf = None,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Any:
    """Served from the catalogue read model alone (prompt, label and version content at one position)
    with `ETag: "<prompt_id>:<version>"`; `If-None-Match` with it answers 304. With `as_of`, answered
    from the event stream instead."""
    if label is not None and version is not None:
        raise ApiError(400, "INVALID_PARAMETER", "give label or version, not both")
    label = norm_label(label)
    resolved_label = None if version is not None else (label or "latest")
    try:
        key = clean_name(name)
    except Invalid:
        raise NotFound("prompt not found", code=PROMPT_NOT_FOUND) from None
    if as_of is not None:
        instant = parse_instant(as_of, "as_of")
        prompt = container.app.read_prompt(scope.principal, scope.org_id,
                                           container.app.prompt_id_by_name(scope.principal, scope.org_id, key), instant)
        chosen = prompt.resolve(label=label, version=version)
        return FetchOut(prompt_id=str(prompt.id), name=prompt.name, version=chosen["version"],
                        label=resolved_label, template=chosen["template"],
                        variables=list(chosen["variables"]), model_settings=dict(chosen["model_config"]),
                        tags=list(chosen["tags"]), as_of=instant)
    row = container.catalogue.fetch(str(scope.org_id), key, label=label, version=version)
    if row is None:
        raise NotFound("prompt not found", code=PROMPT_NOT_FOUND)
    resolved = row["resolved"]
    if resolved is None:
        raise NotFound(f"label {label!r} is not set", code="LABEL_NOT_FOUND", details={"label": label})
    if row["template"] is None:
        raise NotFound(f"version {resolved} does not exist", code="VERSION_NOT_FOUND",
                       details={"version": resolved, "latest_version": row["latest_version"]})
    tag = etag(row["prompt_id"], resolved)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if etag_matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    body = FetchOut(prompt_id=row["prompt_id"], name=row["name"], version=resolved, label=resolved_label,
                    template=row["template"], variables=row["variables"], model_settings=row["model_config"],
                    tags=row["tags"])
    # Serialised once here: skips FastAPI re-validating the response model on the hot path.
    return Response(body.model_dump_json(by_alias=True), media_type="application/json", headers=headers)


@router.get("/{prompt_id}", response_model=PromptOut, summary="A prompt now, or as of a moment (time travel)")
def get_prompt(scope: ReadScope, _: fresh("catalogue"), prompt_id: str, response: Response,
               container: ContainerDep, as_of: AsOf = None) -> PromptOut:
    """`ETag: "<prompt_id>:<latest_version>:<position>"` (changes with any change of the prompt,
    labels and archiving included), usable as `If-Match` when revising. With `as_of`, the prompt and
    its labels as they were at that moment, folded from its events."""
    pid = prompt_id_of(prompt_id)
    if as_of is not None:
        instant = parse_instant(as_of, "as_of")
        return aggregate_view(container.app.read_prompt(scope.principal, scope.org_id, pid, instant), instant)
    row = require_prompt(container, scope.org_id, pid)
    response.headers["ETag"] = prompt_etag(row)
    return row_view(row)


def _archive(scope, prompt_id: str, response: Response, container, rid: str, archive: bool) -> ArchiveOut:
    pid = prompt_id_of(prompt_id)
    command = container.app.archive_prompt if archive else container.app.restore_prompt
    result = command(scope.principal, scope.org_id, pid, rid)
    command_headers(response, result.position)
    return ArchiveOut(id=str(pid), archived=archive, position=result.position or 0)


@router.post("/{prompt_id}/archive", response_model=ArchiveOut, summary="Archive (hidden from lists, read-only)")
def archive_prompt(scope: MemberScope, prompt_id: str, response: Response, container: ContainerDep,
                   rid: RequestId) -> ArchiveOut:
    return _archive(scope, prompt_id, response, container, rid, True)


@router.post("/{prompt_id}/restore", response_model=ArchiveOut, summary="Restore an archived prompt")
def restore_prompt(scope: MemberScope, prompt_id: str, response: Response, container: ContainerDep,
                   rid: RequestId) -> ArchiveOut:
    return _archive(scope, prompt_id, response, container, rid, False)


@router.post("/{prompt_id}/render", response_model=RenderOut, summary="Render a version with variables")
def render_prompt(scope: ReadScope, prompt_id: str, body: RenderRequest, container: ContainerDep) -> RenderOut:
    """Missing or unknown variables are 422 `RENDER_VARIABLES_MISMATCH` naming them."""
    pid = prompt_id_of(prompt_id)
    version, text = container.app.render_prompt(scope.principal, scope.org_id, pid, dict(body.variables),
                                                label=norm_label(body.label), version=body.version)
    return RenderOut(prompt_id=str(pid), version=version, text=text)
