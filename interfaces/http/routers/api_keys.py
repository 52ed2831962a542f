"""API keys: issue (raw key shown once), list metadata, revoke."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from interfaces.http.deps import (
    ContainerDep, IdempotencyKey, KeysScope, MemberScope, RequestId, command_headers, fresh, parse_id,
)
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.orgs import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut, ApiKeyRevoked

router = APIRouter(prefix="/v1/orgs/{org_id}/api-keys", tags=["api keys"], responses=ERRORS)


@router.post("", status_code=201, response_model=ApiKeyCreated, summary="Issue a key (raw key returned once)")
def issue_key(scope: MemberScope, body: ApiKeyCreate, response: Response, container: ContainerDep, rid: RequestId,
              idempotency_key: IdempotencyKey) -> ApiKeyCreated:
    """Permissions must be a subset of the creator's (403 `PERMISSION_ESCALATION`). With an
    `Idempotency-Key`, a replay answers the same metadata with `key: null`: the secret exists only
    in the first response."""
    result = container.app.issue_api_key(scope.principal, scope.org_id, body.name, body.permissions, rid,
                                         idempotency_key=idempotency_key)
    key = container.app.get_api_key(scope.principal, scope.org_id, result.id)
    command_headers(response, result.position, result.replayed)
    response.headers["Cache-Control"] = "no-store"
    return ApiKeyCreated(id=str(key.id), name=key.name, prefix=key.prefix, permissions=list(key.permissions),
                         key=None if result.replayed else result.data["key"], position=result.position or 0)


@router.get("", response_model=ApiKeyList, summary="Keys' metadata (never the secret or its hash)")
def list_keys(scope: KeysScope, _: fresh("api_keys"), container: ContainerDep,
              include_revoked: Annotated[bool, Query()] = True) -> ApiKeyList:
    rows = container.api_keys.list(str(scope.org_id), include_revoked=include_revoked)
    return ApiKeyList(items=[ApiKeyOut(id=r["key_id"], **{k: v for k, v in r.items() if k not in ("key_id", "org_id")})
                             for r in rows])


@router.delete("/{key_id}", response_model=ApiKeyRevoked, summary="Revoke a key (effective on the next request)")
def revoke_key(scope: MemberScope, key_id: str, response: Response, container: ContainerDep,
               rid: RequestId) -> ApiKeyRevoked:
    target = parse_id(key_id, "API_KEY_NOT_FOUND", "API key")
    result = container.app.revoke_api_key(scope.principal, scope.org_id, target, rid)
    command_headers(response, result.position)
    return ApiKeyRevoked(id=str(target), position=result.position or 0)
