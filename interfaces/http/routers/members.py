"""Members of an organisation and their roles (members:manage to change them)."""
from __future__ import annotations

from fastapi import APIRouter, Response

from interfaces.http.deps import (
    ContainerDep, IdempotencyKey, MemberScope, ReadScope, RequestId, command_headers, fresh, parse_id,
)
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.orgs import MemberAdd, MemberChanged, MemberList, MemberOut, MemberPatch

router = APIRouter(prefix="/v1/orgs/{org_id}/members", tags=["members"], responses=ERRORS)


@router.get("", response_model=MemberList, summary="Members and roles")
def list_members(scope: ReadScope, _: fresh("memberships"), container: ContainerDep) -> MemberList:
    return MemberList(items=[MemberOut(**m) for m in container.memberships.members(str(scope.org_id))])


@router.post("", status_code=201, response_model=MemberChanged, summary="Add a registered user with a role")
def add_member(scope: MemberScope, body: MemberAdd, response: Response, container: ContainerDep,
               rid: RequestId, idempotency_key: IdempotencyKey) -> MemberChanged:
    """Admins cannot grant `owner`; plan limits apply (409 `PLAN_LIMIT_EXCEEDED`). With
    `Idempotency-Key`, a retry answers the original result instead of 409 `MEMBER_EXISTS`."""
    result = container.app.add_member(scope.principal, scope.org_id, body.role, rid, user_id=body.user_id,
                                      email=body.email, idempotency_key=idempotency_key)
    command_headers(response, result.position, result.replayed)
    return MemberChanged(user_id=str(result.id), role=body.role, position=result.position or 0)


@router.patch("/{user_id}", response_model=MemberChanged, summary="Change a member's role")
def change_role(scope: MemberScope, user_id: str, body: MemberPatch, response: Response, container: ContainerDep,
                rid: RequestId) -> MemberChanged:
    """Emits MemberRoleChanged. The last owner cannot be demoted (409 `LAST_OWNER`)."""
    target = parse_id(user_id, "MEMBER_NOT_FOUND", "member")
    result = container.app.change_member_role(scope.principal, scope.org_id, target, body.role, rid)
    position = result.position or container.app.head_position()
    command_headers(response, position)
    return MemberChanged(user_id=str(target), role=body.role, position=position)


@router.delete("/{user_id}", response_model=MemberChanged, summary="Remove a member")
def remove_member(scope: MemberScope, user_id: str, response: Response, container: ContainerDep,
                  rid: RequestId) -> MemberChanged:
    target = parse_id(user_id, "MEMBER_NOT_FOUND", "member")
    result = container.app.remove_member(scope.principal, scope.org_id, target, rid)
    command_headers(response, result.position)
    return MemberChanged(user_id=str(target), role=None, position=result.position or 0)
