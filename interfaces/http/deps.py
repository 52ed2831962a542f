"""Request-scoped dependencies: container, request id, the caller, the org scope, read-your-writes.

Order matters and is fixed by parameter order in the routes: authenticate, then resolve the
org scope (404 for anyone outside the tenancy), then (for queries) wait for `min_position`.

Dependencies that do no I/O are `async def` (FastAPI would otherwise send each through the thread
pool). The org scope authenticates itself and decides on the event loop (`org_scope_on_loop`): a
log-head check shared by the requests waiting at that moment, the decision from cached aggregates,
the rate limit through async Redis; only an aggregate not cached yet costs a thread hop. So an org
route with a sync endpoint costs only the hops FastAPI makes for it: the endpoint, and the
validation of its response (adr/0030).
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
from application.access_cache import NotCached
from application.policy import Grant
from application.request_access import RequestAccess
from application.security import looks_like_api_key
from domain.errors import DomainError, Forbidden, NotFound, Unauthenticated
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
    #: The event-log head checked for this request (application.request_access; None without the cache).
    head: int | None = None

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
    parsed = _IDS.get(value)
    if parsed is not None:
        return parsed
    try:
        parsed = UUID(value) if len(value) <= 64 else UUID("!")
    except ValueError:
        raise NotFound(f"{what} not found", code=code) from None
    if len(_IDS) >= 4096:
        _IDS.clear()
    _IDS[value] = parsed
    return parsed


#: Path ids already parsed (valid ones only; `UUID(value)` is a pure function of the text).
_IDS: dict[str, UUID] = {}


def _authenticate(request: Request, access: RequestAccess) -> Caller:
    """`Authorization: Bearer <access JWT | pfk_ API key>`; both checked against aggregate state as
    of the log head `access` checked (a revocation anywhere applies to the next request).
    Then rate-limited per API key / user; refused credentials count against the client address."""
    limiter: ratelimit.RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    try:
        caller = _verify(request, access)
    except Unauthenticated:
        _count_refused(request, limiter)
        raise
    _count_caller(request, limiter, caller)
    return caller


def _count_refused(request: Request, limiter: ratelimit.RateLimiter | None) -> None:
    # Requests without credentials were already counted per address by the middleware.
    if limiter is not None and "authorization" in request.headers:
        ratelimit.apply(request.state, limiter, "addr", client_address(request))


def _count_caller(request: Request, limiter: ratelimit.RateLimiter | None, caller: Caller) -> None:
    _bind_caller(caller)
    if limiter is not None:
        ratelimit.apply(request.state, limiter, *_bucket(caller))


def _bind_caller(caller: Caller) -> None:
    principal = caller.principal
    if principal.api_key_id is not None:
        bind(api_key_id=principal.api_key_id, org_id=principal.key_org_id)
    else:
        bind(user_id=caller.user_id)


def _bucket(caller: Caller) -> tuple[str, str]:
    """The caller's rate-limit bucket: its API key, or its user."""
    principal = caller.principal
    return ("key", str(principal.api_key_id)) if principal.api_key_id is not None else ("user", str(caller.user_id))


def _verify(request: Request, access: RequestAccess) -> Caller:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("missing bearer token", code="UNAUTHENTICATED")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated("malformed Authorization header; expected 'Bearer <token>'", code="INVALID_TOKEN")
    if looks_like_api_key(token):
        return Caller(access.api_key(token))
    claims = request.app.state.tokens.verify_access(token)
    try:
        access.session(claims.session_id, claims.user_id)
    except NotFound:
        raise Unauthenticated("session is no longer active", code="SESSION_REVOKED") from None
    return Caller(Principal.user(claims.user_id), claims.session_id)


def still_allowed(request: Request, scope: OrgScope, permission: Permission) -> Grant:
    """Access of a long-lived request checked again (an SSE stream, at each heartbeat), as of the log
    head now: a revoked key, an ended session, a removed member or a demoted issuer raise
    (Unauthenticated, NotFound, Forbidden). The access JWT itself was verified when the request began;
    its session is what is checked again. Counts nothing against rate limits."""
    access = request.app.state.container.app.request_access()
    caller = scope.caller
    if caller.principal.api_key_id is not None:
        principal = access.api_key(request.headers.get("authorization", "").partition(" ")[2].strip())
    else:
        access.session(caller.session_id, caller.user_id)
        principal = caller.principal
    return access.grant(principal, scope.org_id, permission)


def authenticate(request: Request, _doc=Depends(_bearer_doc)) -> Caller:
    return _authenticate(request, request.app.state.container.app.request_access())


CallerDep = Annotated[Caller, Depends(authenticate)]


async def require_user(caller: CallerDep) -> Caller:
    """Account-level routes need a logged-in user, not an API key."""
    if caller.user_id is None:
        raise Forbidden("this route needs a user's access token, not an API key", code="USER_TOKEN_REQUIRED")
    return caller


UserDep = Annotated[Caller, Depends(require_user)]


@dataclass(frozen=True)
class _Decision:
    """What the credential and the access policy say about a request in `{org_id}`, before
    anything is counted: deciding reads state only, counting (rate limits) comes after."""

    caller: Caller | None
    #: The credential was refused (401).
    refused: Unauthenticated | None = None
    org: UUID | None = None
    grant: Grant | None = None
    #: Outside the tenancy (404) or not allowed (403, or 401 for a disabled key).
    error: DomainError | None = None


def _decide(request: Request, access: RequestAccess, org_id: str, permission: Permission | None) -> _Decision:
    try:
        caller = _verify(request, access)
    except Unauthenticated as exc:
        return _Decision(None, refused=exc)
    try:
        org = parse_id(org_id, "ORG_NOT_FOUND", "organisation")
        grant = access.grant(caller.principal, org, permission)
    except DomainError as exc:
        return _Decision(caller, error=exc)
    return _Decision(caller, org=org, grant=grant)


Buckets = tuple[tuple[str, str], "tuple[str, str] | None"]


def _buckets(request: Request, decision: _Decision) -> Buckets | None:
    """The rate-limit buckets the request counts in, in order: the client address for a refused
    credential (requests without one were counted by the middleware); else the key or user, then
    the organisation once authorised (counted only while the caller's bucket allows the request)."""
    if decision.refused is not None:
        return (("addr", client_address(request)), None) if "authorization" in request.headers else None
    if decision.error is not None:
        return _bucket(decision.caller), None
    return _bucket(decision.caller), ("org", str(decision.org))


def _count(limiter: ratelimit.RateLimiter | None, buckets: Buckets | None) -> tuple:
    if limiter is None or buckets is None:
        return None, None
    first, second = buckets
    return (limiter.hit(*first), None) if second is None else limiter.hit_pair(first, second)


async def _count_on_loop(limiter: ratelimit.RateLimiter | None, buckets: Buckets | None) -> tuple:
    if limiter is None or buckets is None:
        return None, None
    first, second = buckets
    return (await limiter.hit_async(*first), None) if second is None else await limiter.hit_pair_async(first, second)


def _settle(request: Request, decision: _Decision, quotas: tuple, head: int | None) -> OrgScope:
    """Answer or refuse as decided, once counted: a spent bucket (429) comes before the decision's
    own refusal, as the counting order says."""
    if decision.refused is not None:
        ratelimit.record(request.state, quotas[0])
        raise decision.refused
    _bind_caller(decision.caller)
    ratelimit.record(request.state, quotas[0])
    if decision.error is not None:
        raise decision.error
    bind(org_id=decision.org)
    ratelimit.record(request.state, quotas[1])
    return OrgScope(decision.caller, decision.org, decision.grant, head)


def _account(request: Request, decision: _Decision, head: int | None) -> OrgScope:
    """Count the request in its buckets (`_buckets`), then answer or refuse as decided."""
    limiter: ratelimit.RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    return _settle(request, decision, _count(limiter, _buckets(request, decision)), head)


def _org_scope(request: Request, org_id: str, permission: Permission | None) -> OrgScope:
    access = request.app.state.container.app.request_access()  # one check of the log head
    return _account(request, _decide(request, access, org_id, permission), access.head)


def org_scope(permission: Permission | None = None):
    """Dependency: the caller's access to `{org_id}` (404 outside the tenancy; 403 without `permission`)."""

    async def dependency(org_id: str, request: Request, _doc=Depends(_bearer_doc)) -> OrgScope:
        return await org_scope_on_loop(request, org_id, permission)

    dependency.permission = permission  # for fast paths (org_scope_on_loop)
    return dependency


async def org_scope_on_loop(request: Request, org_id: str, permission: Permission | None) -> OrgScope:
    """`org_scope(permission)` for a fast path (interfaces.http.fast_route), the same answer and
    counting, on the event loop where the access cache is wired: a log-head check shared by the
    requests waiting at that moment (interfaces.http.head_check: on Postgres an async read; else
    one thread hop per batch, not one per request: the hops were the tail latency), the decision
    from cached aggregates, the counting in memory or through async Redis. Only an aggregate not
    cached yet sends the request through the thread pool, as the dependency does."""
    state = request.app.state
    heads = getattr(state, "head_check", None)
    if heads is not None:
        access = state.container.app.request_access(checked_head=await heads.check(), cached_only=True)
        try:
            decision = _decide(request, access, org_id, permission)
        except NotCached:
            pass
        else:
            limiter: ratelimit.RateLimiter | None = getattr(state, "rate_limiter", None)
            quotas = await _count_on_loop(limiter, _buckets(request, decision))
            return _settle(request, decision, quotas, access.head)
    return await run_in_threadpool(_org_scope, request, org_id, permission)


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
