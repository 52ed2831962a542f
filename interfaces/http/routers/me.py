"""The caller: user profile plus organisations and roles."""
from __future__ import annotations

from fastapi import APIRouter

from interfaces.http.deps import ContainerDep, UserDep, fresh
from interfaces.http.schemas.auth import MembershipOut, MeOut
from interfaces.http.schemas.common import ERRORS

router = APIRouter(prefix="/v1", tags=["me"], responses=ERRORS)


@router.get("/me", response_model=MeOut, summary="The caller, their organisations and roles")
def me(caller: UserDep, _: fresh("memberships"), container: ContainerDep) -> MeOut:
    user = container.app.get_user(caller.user_id)
    orgs = container.memberships.orgs_of(str(caller.user_id))
    return MeOut(id=str(user.id), email=user.email, display_name=user.display_name,
                 organisations=[MembershipOut(**o) for o in orgs])
