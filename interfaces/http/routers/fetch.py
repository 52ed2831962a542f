"""The fetch path applications call: a prompt by name + label or version, composed, with ETag/304."""
from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from domain.errors import Invalid, NotFound
from domain.values import clean_prompt_name
from interfaces.http.deps import ContainerDep, ReadScope, fresh
from interfaces.http.errors import ApiError
from interfaces.http.kit import AsOf, etag, etag_matches, norm_label, parse_instant
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.prompts import FetchOut
from domain.splits import pick
from interfaces.http.views import fetched

router = APIRouter(prefix="/v1/orgs/{org_id}/prompts", tags=["prompts"], responses=ERRORS)


def _not_found() -> NotFound:
    return NotFound("prompt not found", code="PROMPT_NOT_FOUND")


@router.get("/by-name/{name:path}", response_model=FetchOut, summary="Fetch by name + label or version (hot path)",
            responses={304: {"description": "Not modified (If-None-Match matched the ETag)"}})
def fetch_by_name(
    scope: ReadScope, _: fresh("catalogue"), name: str, container: ContainerDep,
    label: Annotated[str | None, Query(max_length=64, description="Default `latest`")] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    resolve: Annotated[bool, Query(description="Resolve includes (default); false returns the raw content")] = True,
    split_key: Annotated[str | None, Query(max_length=200, description=(
        "For a label pointing at a traffic split: your user's or session's id; the same key always gets "
        "the same version while the split is unchanged (domain.splits documents the hash). Without it, random."))] = None,
    as_of: AsOf = None,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Any:
    """`name` is the prompt's name or an old name (alias); folder paths work as path segments
    (`by-name/support/billing/refund`) or URL-encoded (`by-name/support%2Fbilling%2Frefund`).
    Served from the catalogue read model alone, with the includes of the version resolved against it
    (`dependencies` lists exactly what was used); `ETag` covers the version and every dependency's
    version, so `If-None-Match` answers 304 until any of them changes. With `as_of`, answered from the
    event stream: the prompt and every dependency as they were at that moment."""
    if label is not None and version is not None:
        raise ApiError(400, "INVALID_PARAMETER", "give label or version, not both")
    label = norm_label(label)
    resolved_label = None if version is not None else (label or "latest")
    try:
        key = clean_prompt_name(name)
    except Invalid:
        raise _not_found() from None
    if as_of is not None:
        instant = parse_instant(as_of, "as_of")
        pid = container.app.prompt_id_by_name(scope.principal, scope.org_id, key, instant)
        if not resolve:  # the raw version, even when its composition is broken
            prompt = container.app.read_prompt(scope.principal, scope.org_id, pid, instant)
            chosen = prompt.resolve(label=label, version=version)
            return fetched(str(prompt.id), prompt.name, chosen, resolved_label, None, instant)
        prompt, chosen, composed = container.app.resolve_prompt(scope.principal, scope.org_id, pid, label=label,
                                                                version=version, as_of=instant)
        return fetched(str(prompt.id), prompt.name, chosen, resolved_label, composed, instant)
    row = container.catalogue.fetch(str(scope.org_id), key, label=label, version=version)
    if row is None:
        raise _not_found()
    if row["resolved"] is None:
        raise NotFound(f"label {label!r} is not set", code="LABEL_NOT_FOUND", details={"label": label})
    split = row["split"]
    if split:
        picked = pick(split, scope.org_id, row["prompt_id"], label, split_key)
        if picked != row["resolved"]:
            row = {**container.catalogue.fetch(str(scope.org_id), key, version=picked), "split": split}
    if row["template"] is None:
        raise NotFound(f"version {row['resolved']} does not exist", code="VERSION_NOT_FOUND",
                       details={"version": row["resolved"], "latest_version": row["latest_version"]})
    composed = container.catalogue.compose(str(scope.org_id), row, None if version is not None else label) if resolve else None
    tag = _etag(row, composed)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if etag_matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    body = fetched(row["prompt_id"], row["name"], row, resolved_label, composed)
    if split:
        body.split = split
    # Serialised once here: skips FastAPI re-validating the response model on the hot path.
    return Response(body.model_dump_json(by_alias=True), media_type="application/json", headers=headers)


def _etag(row: dict[str, Any], composed) -> str:
    """`"<prompt_id>:<version>"`, plus a digest of the dependencies' `<prompt_id>:<version>` when
    composed: the representation changes when a dependency's label moves, so the validator must too
    (a digest keeps it short and free of the commas that separate `If-None-Match` entries)."""
    if composed is None:
        return f'"{row["prompt_id"]}:{row["resolved"]}:raw"'
    if not composed.dependencies:
        return etag(row["prompt_id"], row["resolved"])
    deps = hashlib.sha256(";".join(f'{d["prompt_id"]}:{d["version"]}' for d in composed.dependencies).encode())
    return f'"{row["prompt_id"]}:{row["resolved"]}+{deps.hexdigest()[:20]}"'
