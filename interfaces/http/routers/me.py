"""The caller: user profile plus organisations and roles."""
from __future__ import annotations

from fastapi import APIRouter, Response

from interfaces.http.deps import ContainerDep, RequestId, UserDep, command_headers, fresh
from interfaces.http.schemas.auth import LogoutResponse, MembershipOut, MeOut, PasswordChange
from interfaces.http.schemas.common import ERRORS

router = APIRouter(prefix="/v1", tags=["me"], responses=ERRORS)


@router.get("/me", response_model=MeOut, summary="The caller, their organisations and roles")
def me(caller: UserDep, _: fresh("memberships"), container: ContainerDep) -> MeOut:
    user = container.app.get_user(caller.user_id)
    orgs = container.memberships.orgs_of(str(caller.user_id))
    return MeOut(id=str(user.id), email=user.email, display_name=user.display_name,
                 organisations=[MembershipOut(**o) for o in orgs])


@router.post("/me/password", response_model=LogoutResponse, summary="Change your password (ends every session)")
def change_password(caller: UserDep, body: PasswordChange, response: Response, container: ContainerDep,
                    rid: RequestId) -> LogoutResponse:
    """Needs the current password (401 `INVALID_CREDENTIALS`); the new one follows the password policy
    (422 `WEAK_PASSWORD`). Every session of the account ends, this one included: log in again."""
    position = container.app.change_password(caller.user_id, body.current_password, body.new_password, rid)
    command_headers(response, position)
    response.headers["Cache-Control"] = "no-store"
    return LogoutResponse(position=position or container.app.head_position())
