"""The fetch path applications call: a prompt by name + label or version, composed, with ETag/304."""
from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from domain.errors import Invalid, NotFound
from domain.values import clean_prompt_name
from interfaces.http.deps import MAX_POSITION, ContainerDep, ReadScope, fresh, org_scope_on_loop
from interfaces.http.errors import ApiError
from interfaces.http.fast_route import FastPathRoute, fast_path
from interfaces.http.kit import MAX_VERSION, AsOf, etag, etag_matches, norm_label, parse_instant
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.prompts import FetchOut
from domain.splits import pick
from interfaces.http.views import fetched

router = APIRouter(prefix="/v1/orgs/{org_id}/prompts", tags=["prompts"], responses=ERRORS, route_class=FastPathRoute)
CatalogueFresh = fresh("catalogue")
LABEL_MAX, SPLIT_KEY_MAX, IF_NONE_MATCH_MAX = 64, 200, 1024
#: Pure functions of what a request asks for, remembered (bounded): `clean_prompt_name` of a name
#: (a valid one only), and the fast path's reading of a query string (`_plain_query`).
MEMO_SIZE, MEMO_KEY_MAX = 4096, 512
_CLEAN_NAMES: dict[str, str] = {}
_QUERIES: dict[bytes, "dict[str, Any] | None"] = {}


def _not_found() -> NotFound:
    return NotFound("prompt not found", code="PROMPT_NOT_FOUND")


@router.get("/by-name/{name:path}", response_model=FetchOut, summary="Fetch by name + label or version (hot path)",
            responses={304: {"description": "Not modified (If-None-Match matched the ETag)"}})
@fast_path(lambda request: _plain(request), lambda request, args: _run_plain(request, args))
async def fetch_by_name(
    scope: ReadScope, wanted: CatalogueFresh, name: str, container: ContainerDep, request: Request,
    label: Annotated[str | None, Query(max_length=LABEL_MAX, description="Default `latest`")] = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    resolve: Annotated[bool, Query(description="Resolve includes (default); false returns the raw content")] = True,
    split_key: Annotated[str | None, Query(max_length=SPLIT_KEY_MAX, description=(
        "For a label pointing at a traffic split: your user's or session's id; the same key always gets "
        "the same version while the split is unchanged (domain.splits documents the hash). Without it, random."))] = None,
    as_of: AsOf = None,
    if_none_match: Annotated[str | None, Header(max_length=IF_NONE_MATCH_MAX)] = None,
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
    key = _CLEAN_NAMES.get(name)
    if key is None:
        try:
            key = clean_prompt_name(name)
        except Invalid:
            raise _not_found() from None
        if len(name) <= MEMO_KEY_MAX:
            if len(_CLEAN_NAMES) >= MEMO_SIZE:
                _CLEAN_NAMES.clear()
            _CLEAN_NAMES[name] = key
    if as_of is not None:
        return await run_in_threadpool(_as_of, container, scope, key, label, version, resolve, as_of)
    # The resolved answer, kept per process while the prompts it was computed from have not changed
    # (adr/0020): a hit costs no thread hop and no SQL. The cache knows of every event up to the
    # head this request checked, so it answers when that covers the position asked for.
    cache = request.app.state.fetch_cache
    cache_key = (scope.org_id, key, label, version, resolve, split_key)
    usable = cache is not None and scope.head is not None and (wanted is None or wanted <= scope.head)
    hit = cache.get(cache_key) if usable else None
    if hit is None:
        hit = await run_in_threadpool(_resolved, container, cache, request.app.state.catalogue_position,
                                      scope.org_id, cache_key)
    tag, body = hit
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if etag_matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _as_of(container, scope, key: str, label: str | None, version: int | None, resolve: bool, as_of: str) -> Any:
    resolved_label = None if version is not None else (label or "latest")
    instant = parse_instant(as_of, "as_of")
    pid = container.app.prompt_id_by_name(scope.principal, scope.org_id, key, instant)
    if not resolve:  # the raw version, even when its composition is broken
        prompt = container.app.read_prompt(scope.principal, scope.org_id, pid, instant)
        chosen = prompt.resolve(label=label, version=version)
        return fetched(str(prompt.id), prompt.name, chosen, resolved_label, None, instant)
    prompt, chosen, composed = container.app.resolve_prompt(scope.principal, scope.org_id, pid, label=label,
                                                            version=version, as_of=instant)
    return fetched(str(prompt.id), prompt.name, chosen, resolved_label, composed, instant)


def _resolved(container, cache, positions, org_id, cache_key) -> tuple[str, bytes]:
    """(ETag, JSON body) of the fetch, computed from the catalogue and kept when the catalogue did not
    move while it was computed (one consistent state: its position before and after)."""
    if cache is None:
        return _resolve(container, org_id, *cache_key[1:])[0]
    position = positions.read()
    answer, cacheable, depends_on = _resolve(container, org_id, *cache_key[1:])
    if cacheable and positions.read() == position:
        cache.put(cache_key, position, depends_on, answer)
    return answer


def _resolve(container, org_id, key: str, label: str | None, version: int | None, resolve: bool,
             split_key: str | None) -> tuple[tuple[str, bytes], bool, set[UUID]]:
    """((ETag, JSON body), whether it may be kept: not when a split was picked at random, the
    prompts it was computed from: the one fetched and those it includes)."""
    resolved_label = None if version is not None else (label or "latest")
    row = container.catalogue.fetch(str(org_id), key, label=label, version=version)
    if row is None:
        raise _not_found()
    if row["resolved"] is None:
        raise NotFound(f"label {label!r} is not set", code="LABEL_NOT_FOUND", details={"label": label})
    split = row["split"]
    if split:
        picked = pick(split, org_id, row["prompt_id"], label, split_key)
        if picked != row["resolved"]:
            row = {**container.catalogue.fetch(str(org_id), key, version=picked), "split": split}
    if row["template"] is None:
        raise NotFound(f"version {row['resolved']} does not exist", code="VERSION_NOT_FOUND",
                       details={"version": row["resolved"], "latest_version": row["latest_version"]})
    composed = container.catalogue.compose(str(org_id), row, None if version is not None else label) if resolve else None
    body = fetched(row["prompt_id"], row["name"], row, resolved_label, composed)
    if split:
        body.split = split
    depends_on = {UUID(row["prompt_id"]), *(UUID(d["prompt_id"]) for d in (composed.dependencies if composed else ()))}
    # Serialised once here: skips FastAPI re-validating the response model on the hot path.
    return ((_etag(row, composed), body.model_dump_json(by_alias=True).encode()), not (split and split_key is None),
            depends_on)


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


# -- the fast path (interfaces.http.fast_route): the same dependencies and endpoint, called directly
_scope_dependency = ReadScope.__metadata__[0].dependency
_fresh_dependency = CatalogueFresh.__metadata__[0].dependency
_VERSION = re.compile(r"[1-9][0-9]{0,9}")
_POSITION = re.compile(r"0|[1-9][0-9]{0,18}")
#: What pydantic reads as a bool from a query string (case-insensitively).
_BOOLS = {"1": True, "on": True, "t": True, "true": True, "y": True, "yes": True,
          "0": False, "off": False, "f": False, "false": False, "n": False, "no": False}


def _plain(request: Request) -> dict[str, Any] | None:
    """The fetch's parameters when each is plainly valid (parsed as FastAPI would), else None."""
    query = request.scope.get("query_string", b"")
    parsed = _QUERIES.get(query, _UNREAD)
    if parsed is _UNREAD:
        parsed = _plain_query(request)
        if len(query) <= MEMO_KEY_MAX:
            if len(_QUERIES) >= MEMO_SIZE:
                _QUERIES.clear()
            _QUERIES[query] = parsed
    if parsed is None:
        return None
    args = dict(parsed)
    if_none_match = request.headers.getlist("if-none-match")
    min_position = request.headers.getlist("x-min-position")
    if len(if_none_match) > 1 or len(min_position) > 1 or "" in if_none_match or "" in min_position:
        return None
    if if_none_match and len(if_none_match[0]) > IF_NONE_MATCH_MAX:
        return None
    args["if_none_match"] = if_none_match[0] if if_none_match else None
    args["x_min_position"] = min_position[0] if min_position else None
    return args


_UNREAD = object()


def _plain_query(request: Request) -> dict[str, Any] | None:
    """The query parameters when each is plainly valid, else None (a function of the query string)."""
    args: dict[str, Any] = {"label": None, "version": None, "resolve": True, "split_key": None, "min_position": None}
    seen = set()
    for key, value in request.query_params.multi_items():
        if key in seen or not value:
            return None
        seen.add(key)
        if key == "label":
            if len(value) > LABEL_MAX:
                return None
            args["label"] = value
        elif key == "version":
            if not _VERSION.fullmatch(value) or int(value) > MAX_VERSION:
                return None
            args["version"] = int(value)
        elif key == "resolve":
            flag = _BOOLS.get(value.lower()) if value.isascii() else None
            if flag is None:
                return None
            args["resolve"] = flag
        elif key == "split_key":
            if len(value) > SPLIT_KEY_MAX:
                return None
            args["split_key"] = value
        elif key == "min_position":
            if not _POSITION.fullmatch(value) or int(value) > MAX_POSITION:
                return None
            args["min_position"] = int(value)
        elif key == "as_of":
            return None
        # any other parameter is ignored, as FastAPI ignores it
    return args


async def _run_plain(request: Request, args: dict[str, Any]) -> Response:
    """The route's dependencies in its declared order (org scope, read-your-writes), then the endpoint."""
    path = request.path_params
    scope = await org_scope_on_loop(request, path["org_id"], _scope_dependency.permission)
    wanted = await _fresh_dependency(request=request, min_position=args["min_position"],
                                     x_min_position=args["x_min_position"])
    return await fetch_by_name(scope, wanted, path["name"], request.app.state.container, request,
                               label=args["label"], version=args["version"], resolve=args["resolve"],
                               split_key=args["split_key"], as_of=None, if_none_match=args["if_none_match"])
