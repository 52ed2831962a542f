"""Prompts: create, list, read (now or as of a time), rename, archive/restore, render, dependents."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from domain.errors import NotFound
from domain.values import clean_prompt_name
from interfaces.http.deps import ContainerDep, IdempotencyKey, MemberScope, ReadScope, RequestId, command_headers, fresh
from interfaces.http.kit import AsOf, instant_or_none, norm_label, parse_instant, prompt_etag, prompt_id_of
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.prompts import (
    ArchiveOut, DependentList, DependentOut, PromptCreate, PromptCreated, PromptList, PromptOut, RenameOut,
    RenameRequest, RenderOut, RenderRequest,
)
from interfaces.http.views import messages_arg, prompt_aggregate, prompt_row, rendered, summary_row, variables_arg

router = APIRouter(prefix="/v1/orgs/{org_id}/prompts", tags=["prompts"], responses=ERRORS)


def require_prompt(container, org_id, prompt_id) -> dict[str, Any]:
    row = container.catalogue.get(str(org_id), str(prompt_id))
    if row is None:
        raise NotFound("prompt not found", code="PROMPT_NOT_FOUND")
    return row


@router.post("", status_code=201, response_model=PromptCreated, summary="Create a prompt (version 1)")
def create_prompt(scope: MemberScope, body: PromptCreate, response: Response, container: ContainerDep,
                  rid: RequestId, idempotency_key: IdempotencyKey) -> PromptCreated:
    """Needs prompts:write. Names are unique per organisation (409 `PROMPT_NAME_TAKEN`). Includes must
    resolve now: a missing one is 422 `DEPENDENCY_NOT_FOUND`, a cycle 422 `COMPOSITION_CYCLE` (with
    the path), more than five levels 422 `COMPOSITION_TOO_DEEP`."""
    result = container.app.create_prompt(
        scope.principal, scope.org_id, name=body.name, type=body.type, template=body.template,
        messages=messages_arg(body), template_format=body.template_format, variables=variables_arg(body),
        model_config=body.model_settings, tags=body.tags, message=body.message, request_id=rid,
        idempotency_key=idempotency_key, checked_head=scope.head,
    )
    command_headers(response, result.position, result.replayed)
    response.headers["ETag"] = f'"{result.id}:1"'
    return PromptCreated(id=str(result.id), name=clean_prompt_name(body.name), version=1, position=result.position or 0)


@router.get("", response_model=PromptList, summary="List prompts (cursor pagination, filters, sort)")
def list_prompts(
    scope: ReadScope, _: fresh("catalogue"), container: ContainerDep,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[str | None, Query(max_length=64, description="`latest` matches every prompt")] = None,
    name_prefix: Annotated[str | None, Query(max_length=200)] = None,
    folder: Annotated[str | None, Query(max_length=200, description=(
        "Only the prompts directly in this folder (`support/billing`; empty = the top level)"))] = None,
    archived: Annotated[Literal["false", "true", "all"], Query()] = "false",
    sort: Annotated[str, Query(max_length=16, description="name | -name | updated_at | -updated_at | "
                                                         "created_at | -created_at")] = "name",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> PromptList:
    page = container.catalogue.list(
        str(scope.org_id), tag=tag, label=norm_label(label), name_prefix=name_prefix,
        folder=_folder(folder), archived=None if archived == "all" else archived == "true", sort=sort, limit=limit,
        cursor=cursor,
    )
    return PromptList(items=[summary_row(r) for r in page.items], next_cursor=page.next_cursor)


def _folder(folder: str | None) -> str | None:
    if folder is None:
        return None
    folder = folder.strip().strip("/")
    return clean_prompt_name(folder) if folder else ""


@router.get("/{prompt_id}", response_model=PromptOut, summary="A prompt now, or as of a moment (time travel)")
def get_prompt(scope: ReadScope, _: fresh("catalogue"), prompt_id: str, response: Response,
               container: ContainerDep, as_of: AsOf = None) -> PromptOut:
    """`ETag: "<prompt_id>:<latest_version>:<position>"` (changes with any change of the prompt,
    labels and archiving included), usable as `If-Match` when revising. With `as_of`, the prompt and
    its labels as they were at that moment, folded from its events. Content is shown raw (includes
    unresolved): the by-name fetch and render resolve them."""
    pid = prompt_id_of(prompt_id)
    if as_of is not None:
        instant = parse_instant(as_of, "as_of")
        return prompt_aggregate(container.app.read_prompt(scope.principal, scope.org_id, pid, instant), instant)
    row = require_prompt(container, scope.org_id, pid)
    response.headers["ETag"] = prompt_etag(row)
    return prompt_row(row)


@router.post("/{prompt_id}/rename", response_model=RenameOut, summary="Rename (or move to another folder)")
def rename_prompt(scope: MemberScope, prompt_id: str, body: RenameRequest, response: Response,
                  container: ContainerDep, rid: RequestId) -> RenameOut:
    """Needs prompts:write. The old name stays the prompt's alias: fetches and includes by it keep
    resolving, and no other prompt can take it (409 `PROMPT_NAME_TAKEN`)."""
    pid = prompt_id_of(prompt_id)
    result = container.app.rename_prompt(scope.principal, scope.org_id, pid, body.name, rid)
    position = result.position or container.app.head_position()
    command_headers(response, position)
    return RenameOut(id=str(pid), name=clean_prompt_name(body.name), position=position)


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
def render_prompt(scope: ReadScope, prompt_id: str, body: RenderRequest, container: ContainerDep,
                  as_of: AsOf = None) -> RenderOut:
    """Includes resolved (as of `as_of` when given), variables checked against the composed schema:
    every problem (missing, wrong type, unknown when `strict`) is listed in one 422
    `RENDER_VARIABLES_MISMATCH`. Chat prompts: placeholders are replaced by the given messages."""
    pid = prompt_id_of(prompt_id)
    version, composed, output = container.app.render_prompt(
        scope.principal, scope.org_id, pid, dict(body.variables), label=norm_label(body.label), version=body.version,
        placeholders={k: [m.model_dump() for m in v] for k, v in body.placeholders.items()}, strict=body.strict,
        as_of=instant_or_none(as_of, "as_of"))
    return rendered(str(pid), version, composed, output)


@router.get("/{prompt_id}/dependents", response_model=DependentList, summary="Where is this prompt used?")
def dependents(scope: ReadScope, _: fresh("catalogue"), prompt_id: str, container: ContainerDep) -> DependentList:
    """The prompts whose latest version, or a version one of their labels points at, includes this
    one (by its name or an old name): what a change to it will affect."""
    pid = prompt_id_of(prompt_id)
    require_prompt(container, scope.org_id, pid)
    rows = container.catalogue.dependents(str(scope.org_id), str(pid))
    return DependentList(prompt_id=str(pid), items=[DependentOut(**r) for r in rows])
