"""Immutable versions: revise (optimistic, `base_version` or `If-Match`), list, get, diff."""
from __future__ import annotations

import difflib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from domain.errors import Conflict, Invalid, NotFound
from interfaces.http.deps import (
    ContainerDep, IdempotencyKey, MemberScope, ReadScope, RequestId, command_headers, fresh,
)
from interfaces.http.errors import ApiError
from interfaces.http.kit import MAX_VERSION, etag, etag_matches, parse_if_match, prompt_id_of, version_number
from interfaces.http.routers.prompts import require_prompt
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.prompts import (
    DiffOut, FieldChange, MessageDiff, PromptRevise, VersionCreated, VersionList, VersionOut,
)
from interfaces.http.schemas.content import MessageOut
from interfaces.http.views import messages_arg, variables_arg, version_row

router = APIRouter(prefix="/v1/orgs/{org_id}/prompts/{prompt_id}", tags=["versions"], responses=ERRORS)


def _lines(text: str) -> list[str]:
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(keepends=True)]


@router.post("/versions", status_code=201, response_model=VersionCreated, summary="Revise: add version n+1",
             responses={412: {"description": "If-Match did not name the latest version"}})
def revise(scope: MemberScope, prompt_id: str, body: PromptRevise, response: Response, container: ContainerDep,
           rid: RequestId, idempotency_key: IdempotencyKey,
           if_match: Annotated[str | None, Header(max_length=256)] = None) -> VersionCreated:
    """A stale `base_version` is 409 `PROMPT_VERSION_CONFLICT` with `current_version` in details;
    a stale `If-Match` is 412 with the same details. With `Idempotency-Key`, a retried revision
    answers the version it created (`Idempotency-Replayed: true`) instead of a stale-base conflict."""
    pid = prompt_id_of(prompt_id)
    base = body.base_version
    if if_match is not None:
        from_header = parse_if_match(if_match, pid)
        if base is not None and base != from_header:
            raise ApiError(400, "INVALID_PARAMETER", "base_version and If-Match disagree")
        base = from_header
    if base is None:
        raise Invalid("give base_version (or an If-Match header)", code="BASE_VERSION_REQUIRED")
    try:
        result = container.app.revise_prompt(
            scope.principal, scope.org_id, pid, base_version=base, request_id=rid, template=body.template,
            messages=messages_arg(body), template_format=body.template_format, variables=variables_arg(body),
            model_config=body.model_settings, tags=body.tags, message=body.message, idempotency_key=idempotency_key,
            checked_head=scope.head,
        )
    except Conflict as exc:
        if if_match is not None and exc.code == "PROMPT_VERSION_CONFLICT":
            raise ApiError(412, "PRECONDITION_FAILED", exc.message, exc.details) from None
        raise
    command_headers(response, result.position, result.replayed)
    response.headers["ETag"] = etag(pid, result.version)
    return VersionCreated(id=str(pid), version=result.version, position=result.position or 0)


@router.get("/versions", response_model=VersionList, summary="Versions, oldest first")
def list_versions(scope: ReadScope, _: fresh("catalogue"), prompt_id: str, container: ContainerDep,
                  after: Annotated[int, Query(ge=0, le=MAX_VERSION)] = 0,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> VersionList:
    pid = prompt_id_of(prompt_id)
    row = require_prompt(container, scope.org_id, pid)
    rows = container.catalogue.versions(str(scope.org_id), str(pid), after=after, limit=limit)
    more = len(rows) == limit and rows[-1]["version"] < row["latest_version"]
    return VersionList(items=[version_row(r) for r in rows], next_after=rows[-1]["version"] if more else None)


@router.get("/versions/{number}", response_model=VersionOut, summary="One immutable version",
            responses={304: {"description": "Not modified"}})
def get_version(scope: ReadScope, _: fresh("catalogue"), prompt_id: str, number: str, response: Response,
                container: ContainerDep,
                if_none_match: Annotated[str | None, Header(max_length=1024)] = None) -> Any:
    pid = prompt_id_of(prompt_id)
    n = version_number(number)
    tag = etag(pid, n)
    found = container.catalogue.version(str(scope.org_id), str(pid), n)
    if found is None:
        require_prompt(container, scope.org_id, pid)
        raise NotFound(f"version {n} does not exist", code="VERSION_NOT_FOUND", details={"version": n})
    if etag_matches(if_none_match, tag):
        return Response(status_code=304, headers={"ETag": tag})
    response.headers["ETag"] = tag
    return version_row(found)


@router.get("/diff", response_model=DiffOut, summary="Unified diff of two versions")
def diff(scope: ReadScope, _: fresh("catalogue"), prompt_id: str, container: ContainerDep,
         from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_VERSION)],
         to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_VERSION)]) -> DiffOut:
    pid = prompt_id_of(prompt_id)
    rows = {}
    for n in (from_version, to_version):
        rows[n] = container.catalogue.version(str(scope.org_id), str(pid), n)
        if rows[n] is None:
            require_prompt(container, scope.org_id, pid)
            raise NotFound(f"version {n} does not exist", code="VERSION_NOT_FOUND", details={"version": n})
    a, b = rows[from_version], rows[to_version]
    names = (f"v{from_version}", f"v{to_version}")
    text = "" if a["type"] == "chat" else _diff(a["template"], b["template"], *names)
    changes = {field: FieldChange(before=a[field], after=b[field])
               for field in ("variables", "variable_schema", "template_format", "model_config", "tags")
               if a[field] != b[field]}
    return DiffOut(prompt_id=str(pid), from_version=from_version, to_version=to_version, template_diff=text,
                   messages_diff=_messages_diff(a["messages"] or [], b["messages"] or [], names), changes=changes)


def _diff(before: str, after: str, from_name: str, to_name: str) -> str:
    return "".join(difflib.unified_diff(_lines(before), _lines(after), fromfile=from_name, tofile=to_name))


def _messages_diff(before: list[dict], after: list[dict], names: tuple[str, str]) -> list[MessageDiff]:
    """Message by message, position by position: each position whose message differs."""
    out = []
    for i in range(max(len(before), len(after))):
        old = before[i] if i < len(before) else None
        new = after[i] if i < len(after) else None
        if old == new:
            continue
        out.append(MessageDiff(index=i, before=MessageOut(**old) if old else None, after=MessageOut(**new) if new else None,
                               content_diff=_diff((old or {}).get("content", ""), (new or {}).get("content", ""),
                                                  f"{names[0]}[{i}]", f"{names[1]}[{i}]")))
    return out
