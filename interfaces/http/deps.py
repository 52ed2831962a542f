"""Request-scoped dependencies: container, request id, the caller, the org scope, read-your-writes.

Order matters and is fixed by parameter order in the routes: authenticate, then resolve the
org scope (404 for anyone outside the tenancy), then (for queries) wait for `min_position`.

Dependencies that do no I/O are `async def` (FastAPI would otherwise send each through the thread
pool); the org scope authenticates itself, so an org route costs one thread hop for auth +
tenancy and one for the endpoint.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Query, Request, Response
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from application import Principal
from application.policy import Grant
from application.security import looks_like_api_key
from domain.errors import Forbidden, NotFound, Unauthenticated
from domain.permissions import Permission
from interfaces.bootstrap import Container
from interfaces.http import ratelimit
from interfaces.http.errors import ApiError
from interfaces.http.security import MAX_TOKEN_CHARS
from interfaces.observability.logs import bind

MAX_POSITION = 2**63 - 1
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_bearer_doc = HTTPBearer(auto_error=False, description="An access JWT from /v1/auth/login, or an API key `pfk_...`")


@dataclass(frozen=True)
class Caller:
    principal: Principal
    session_id: UUID | None = None

    @property
    def user_id(self) -> UUID | None:
        return self.principal.user_id


@dataclass(frozen=True)
class OrgScope:
    """The caller inside `{org_id}`: the access policy's grant (application.policy)."""

    caller: Caller
    org_id: UUID
    grant: Grant

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    @property
    def permissions(self) -> frozenset[str]:
        return self.grant.permission_names


async def get_container(request: Request) -> Container:
    return request.app.state.container


async def get_request_id(request: Request) -> str:
    return request.state.request_id


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str:
    raw = request.headers.get("user-agent", "")
    return "".join(c for c in raw if c.isprintable())[:200]


ContainerDep = Annotated[Container, Depends(get_container)]
RequestId = Annotated[str, Depends(get_request_id)]


def parse_id(value: str, code: str, what: str) -> UUID:
    """Path ids that are not UUIDs name nothing: 404, like any other unknown id."""
    try:
        return UUID(value) if len(value) <= 64 else UUID("!")
    except ValueError:
        raise NotFound(f"{what} not found", code=code) from None


def _authenticate(request: Request) -> Caller:
    """`Authorization: Bearer <access JWT | pfk_ API key>`; both checked against the event store.
    Then rate-limited per API key / user; refused credentials count against the client address."""
    limiter: ratelimit.RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    try:
        caller = _verify(request)
    except Unauthenticated:
        # Requests without credentials were already counted per address by the middleware.
        if limiter is not None and "authorization" in request.headers:
            ratelimit.apply(request.state, limiter, "addr", client_address(request))
        raise
    principal = caller.principal
    if principal.api_key_id is not None:
        bind(api_key_id=principal.api_key_id, org_id=principal.key_org_id)
    else:
        bind(user_id=caller.user_id)
    if limiter is not None:
        if principal.api_key_id is not None:
            ratelimit.apply(request.state, limiter, "key", str(principal.api_key_id))
        else:
            ratelimit.apply(request.state, limiter, "user", str(caller.user_id))
    return caller


def _verify(request: Request) -> Caller:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("missing bearer token", code="UNAUTHENTICATED")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated("malformed Authorization header; expected 'Bearer <token>'", code="INVALID_TOKEN")
    container: Container = request.app.state.container
    if looks_like_api_key(token):
        return Caller(container.app.authenticate_api_key(token))
    claims = request.app.state.tokens.verify_access(token)
    try:
        container.app.check_session(claims.session_id, claims.user_id)
    except NotFound:
        raise Unauthenticated("session is no longer active", code="SESSION_REVOKED") from None
    return Caller(Principal.user(claims.user_id), claims.session_id)


def authenticate(request: Request, _doc=Depends(_bearer_doc)) -> Caller:
    return _authenticate(request)


CallerDep = Annotated[Caller, Depends(authenticate)]


async def require_user(caller: CallerDep) -> Caller:
    """Account-level routes need a logged-in user, not an API key."""
    if caller.user_id is None:
        raise Forbidden("this route needs a user's access token, not an API key", code="USER_TOKEN_REQUIRED")
    return caller


UserDep = Annotated[Caller, Depends(require_user)]


def org_scope(permission: Permission | None = None):
    """Dependency: the caller's access to `{org_id}` (404 outside the tenancy; 403 without `permission`)."""

    def dependency(org_id: str, request: Request, _doc=Depends(_bearer_doc)) -> OrgScope:
        caller = _authenticate(request)
        org = parse_id(org_id, "ORG_NOT_FOUND", "organisation")
        grant = request.app.state.container.app.grant(caller.principal, org, permission)
        bind(org_id=org)
        limiter = getattr(request.app.state, "rate_limiter", None)
        if limiter is not None:
            ratelimit.apply(request.state, limiter, "org", str(org))
        return OrgScope(caller, org, grant)

    return dependency


def read_model(*names: str):
    """Dependency for queries: wait (bounded) until the named projections reached `min_position`;
    answers the position asked for (None without one), for queries that wait on more."""

    async def dependency(
        request: Request,
        min_position: Annotated[int | None, Query(ge=0, le=MAX_POSITION, description=(
            "Wait until the read model has applied this log position (from a command's `position`)."))] = None,
        x_min_position: Annotated[str | None, Header(alias="X-Min-Position", description="Same as min_position.")] = None,
    ) -> int | None:
        wanted = min_position or 0
        if x_min_position is not None:
            if not x_min_position.strip().isdigit() or int(x_min_position) > MAX_POSITION:
                raise ApiError(400, "INVALID_PARAMETER", "X-Min-Position must be a non-negative integer")
            wanted = max(wanted, int(x_min_position))
        if wanted <= 0:
            return None
        await run_in_threadpool(_wait, request.app.state.container, wanted, list(names) or None)
        return wanted

    return dependency


def _wait(container: Container, wanted: int, names: list[str] | None) -> None:
    if wanted > container.app.head_position():
        raise ApiError(400, "INVALID_MIN_POSITION", "min_position is ahead of the event log", {"min_position": wanted})
    timeout = container.settings.query_wait_seconds
    if not container.supervisor.wait_for(wanted, timeout, names):
        raise ApiError(503, "READ_MODEL_LAGGING", "the read model has not reached the requested position yet",
                       {"min_position": wanted, "waited_seconds": timeout}, headers={"Retry-After": "1"})


async def idempotency_key(
    key: Annotated[str | None, Header(alias="Idempotency-Key", description=(
        "Makes this create safe to retry: the same key and body replay the original response "
        "(with `Idempotency-Replayed: true`); the same key with another body is 409."))] = None,
) -> str | None:
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1..255 visible ASCII characters")
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


def command_headers(response: Response, position: int | None, replayed: bool = False) -> None:
    if position is not None:
        response.headers["X-Event-Position"] = str(position)
    if replayed:
        response.headers["Idempotency-Replayed"] = "true"


#: Org scopes, declared first in route signatures so tenancy is checked before anything else.
MemberScope = Annotated[OrgScope, Depends(org_scope())]
ReadScope = Annotated[OrgScope, Depends(org_scope(Permission.PROMPTS_READ))]
KeysScope = Annotated[OrgScope, Depends(org_scope(Permission.API_KEYS_MANAGE))]
AuditScope = Annotated[OrgScope, Depends(org_scope(Permission.AUDIT_READ))]
ManageScope = Annotated[OrgScope, Depends(org_scope(Permission.ORG_MANAGE))]


def fresh(*names: str):
    """`_: fresh("catalogue")` in a route signature: read-your-writes on those projections (the
    parameter receives the position asked for, or None)."""
    return Annotated[int | None, Depends(read_model(*names))]
