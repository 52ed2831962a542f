"""Identity: register, login (throttled), refresh (rotation + reuse detection), logout, sessions."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from application.identity import SessionGrant
from interfaces.http.deps import (
    ContainerDep, RequestId, UserDep, client_address, command_headers, fresh, user_agent,
)
from interfaces.http.schemas.auth import (
    LoginRequest, LogoutResponse, RefreshRequest, RegisterRequest, RegisterResponse, SessionList, SessionOut, TokenPair,
)
from interfaces.http.schemas.common import ERRORS

router = APIRouter(prefix="/v1/auth", tags=["auth"], responses=ERRORS)


def _pair(request: Request, response: Response, grant: SessionGrant) -> TokenPair:
    tokens = request.app.state.tokens
    position = grant.position or request.app.state.container.app.head_position()
    command_headers(response, position)
    response.headers["Cache-Control"] = "no-store"
    return TokenPair(
        access_token=tokens.access_token(grant.user_id, grant.session_id), expires_in=tokens.access_ttl,
        refresh_token=tokens.refresh_token(grant.user_id, grant.session_id, grant.generation),
        refresh_expires_in=tokens.refresh_ttl, session_id=str(grant.session_id), user_id=str(grant.user_id),
        position=position,
    )


@router.post("/register", status_code=201, response_model=RegisterResponse, summary="Create an account")
def register(body: RegisterRequest, response: Response, container: ContainerDep, rid: RequestId) -> RegisterResponse:
    """Password policy: at least 12 characters (`WEAK_PASSWORD`); a taken email is 409 `EMAIL_TAKEN`.
    Nobody chooses a role here: roles only exist inside organisations."""
    user_id, position = container.app.register_user(body.email, body.password, body.display_name or "", rid)
    user = container.app.get_user(user_id)
    command_headers(response, position)
    return RegisterResponse(id=str(user_id), email=user.email, display_name=user.display_name, position=position or 0)


@router.post("/login", response_model=TokenPair, summary="Log in: access JWT + refresh token",
             responses={429: {"description": "Too many login attempts (see Retry-After)"}})
def login(body: LoginRequest, request: Request, response: Response, container: ContainerDep,
          rid: RequestId) -> TokenPair:
    """Login attempts are limited per account from one client address, per client address, and per
    account across all addresses; each attempt is counted before the password is checked. Over a
    limit: 429 `TOO_MANY_LOGIN_ATTEMPTS` with `Retry-After`, even with the right password."""
    throttle = request.app.state.login_throttle
    address = client_address(request)
    throttle.attempt(body.email, address)
    grant = container.app.login(body.email, body.password, user_agent(request), rid)
    throttle.succeeded(body.email, address)
    return _pair(request, response, grant)


@router.post("/refresh", response_model=TokenPair, summary="Rotate the refresh token")
def refresh(body: RefreshRequest, request: Request, response: Response, container: ContainerDep,
            rid: RequestId) -> TokenPair:
    """Each refresh token works once. Presenting an already-used one revokes the whole session
    (reuse detection) and answers 401 `REFRESH_TOKEN_REUSED`."""
    claims = request.app.state.tokens.verify_refresh(body.refresh_token)
    # The token's subject is checked against the session before anything is rotated or saved.
    grant = container.app.refresh_session(claims.session_id, claims.generation, claims.user_id, rid)
    return _pair(request, response, grant)


@router.post("/logout", response_model=LogoutResponse, summary="Revoke the current session")
def logout(caller: UserDep, response: Response, container: ContainerDep, rid: RequestId) -> LogoutResponse:
    position = container.app.logout(caller.session_id, caller.user_id, rid) or container.app.head_position()
    command_headers(response, position)
    return LogoutResponse(position=position)


@router.post("/logout-all", response_model=LogoutResponse, summary="Revoke every session of the caller")
def logout_all(caller: UserDep, response: Response, container: ContainerDep, rid: RequestId) -> LogoutResponse:
    position = container.app.logout_all(caller.user_id, rid) or container.app.head_position()
    command_headers(response, position)
    return LogoutResponse(position=position)


@router.get("/sessions", response_model=SessionList, summary="The caller's sessions")
def sessions(caller: UserDep, _: fresh("sessions"), container: ContainerDep,
             include_inactive: Annotated[bool, Query(description="Also list revoked/ended sessions")] = False,
             ) -> SessionList:
    rows = container.sessions.list(str(caller.user_id), include_inactive=include_inactive)
    return SessionList(items=[SessionOut(
        session_id=r["session_id"], opened_at=r["opened_at"], user_agent=r["user_agent"], generation=r["generation"],
        last_refreshed_at=r["last_refreshed_at"], revoked_at=r["revoked_at"], revoked_reason=r["revoked_reason"],
        active=r["active"], current=r["session_id"] == str(caller.session_id),
    ) for r in rows])
