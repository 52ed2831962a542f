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
from interfaces.http.routers.prompts import etag, etag_matches, prompt_id_of, require_prompt
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.prompts import DiffOut, FieldChange, PromptRevise, VersionCreated, VersionList, VersionOut

router = APIRouter(prefix="/v1/orgs/{org_id}/prompts/{prompt_id}", tags=["versions"], responses=ERRORS)
MAX_VERSION = 2**31 - 1


def parse_if_match(header: str, prompt_id: Any) -> int:
    """The version an `If-Match` names: the ETag of GET .../prompts/{id}
    (`"<prompt_id>:<version>:<position>"`), a version's ETag (`"<prompt_id>:<version>"`) or a bare
    version number. Only the version is compared (labels moving meanwhile do not stale a revision)."""
    parts = header.strip().removeprefix("W/").strip('"').split(":")
    if len(parts) > 3 or (len(parts) == 3 and not parts[2].isdigit()):
        raise ApiError(400, "INVALID_PARAMETER", 'If-Match must be the ETag "<prompt_id>:<version>[:<position>]"')
    owner, number = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
    if owner and owner != str(prompt_id):
        raise ApiError(412, "PRECONDITION_FAILED", "If-Match names another prompt")
    if not number.isdigit() or not 1 <= int(number) <= MAX_VERSION:
        raise ApiError(400, "INVALID_PARAMETER", 'If-Match must be the ETag "<prompt_id>:<version>[:<position>]"')
    return int(number)


def version_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_VERSION:
        raise NotFound("version not found", code="VERSION_NOT_FOUND")
    return int(value)


def _lines(text: str) -> list[str]:
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(keepends=True)]


def version_view(row: dict[str, Any]) -> VersionOut:
    return VersionOut(version=row["version"], template=row["template"], variables=row["variables"],
                      model_settings=row["model_config"], tags=row["tags"], message=row["message"],
                      author=row["author"], created_at=row["created_at"])


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
            variables=body.variables, model_config=body.model_settings, tags=body.tags, message=body.message,
            idempotency_key=idempotency_key,
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
    return VersionList(items=[version_view(r) for r in rows], next_after=rows[-1]["version"] if more else None)


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
    return version_view(found)


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
    text = "".join(difflib.unified_diff(
        _lines(a["template"]), _lines(b["template"]),
        fromfile=f"v{from_version}", tofile=f"v{to_version}",
    ))
    changes = {field: FieldChange(before=a[field], after=b[field])
               for field in ("variables", "model_config", "tags") if a[field] != b[field]}
    return DiffOut(prompt_id=str(pid), from_version=from_version, to_version=to_version, template_diff=text,
                   changes=changes)
