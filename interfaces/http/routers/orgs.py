"""Organisations: create, list, read (from the aggregate), rename / change plan."""
from __future__ import annotations

from fastapi import APIRouter, Response

from application.policy import Grant
from domain.permissions import Permission
from interfaces.http.deps import (
    CallerDep, ContainerDep, IdempotencyKey, MemberScope, RequestId, UserDep, command_headers, fresh, parse_id,
)
from interfaces.http.errors import ApiError
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.orgs import (
    OrgCreate, OrgCreated, OrgList, OrgOut, OrgPatch, OrgSummary, OrgUpdated, PlanLimitsOut,
)

router = APIRouter(prefix="/v1/orgs", tags=["organisations"], responses=ERRORS)


def org_view(grant: Grant, prompts_used: int) -> OrgOut:
    """The organisation as the caller sees it: their role and what they may do (the access policy's
    answer: for an API key, its permissions as narrowed by its issuer's current role), and the
    plan's usage (`prompts_used`: its prompt quota's count)."""
    org = grant.org
    role = grant.role.value if grant.role else None
    permissions = sorted(grant.permission_names)
    limits = org.limits
    return OrgOut(
        id=str(org.id), name=org.name, plan=org.plan, role=role, permissions=permissions,
        limits=PlanLimitsOut(members=limits.members, prompts=limits.prompts, api_keys=limits.api_keys),
        usage=PlanLimitsOut(members=len(org.members), prompts=prompts_used, api_keys=org.active_api_keys),
        protected_labels=list(org.protected_labels),
        review_policies={label: org.review_policy(label) for label in org.protected_labels},
    )


@router.post("", status_code=201, response_model=OrgCreated, summary="Create an organisation (caller = owner)")
def create_org(caller: UserDep, body: OrgCreate, response: Response, container: ContainerDep, rid: RequestId,
               idempotency_key: IdempotencyKey) -> OrgCreated:
    result = container.app.create_organisation(caller.principal, body.name, rid, idempotency_key=idempotency_key)
    org = container.app.grant(caller.principal, result.id).org
    command_headers(response, result.position, result.replayed)
    return OrgCreated(id=str(org.id), name=org.name, plan=org.plan, role="owner", position=result.position or 0)


@router.get("", response_model=OrgList, summary="Organisations of the caller")
def list_orgs(caller: CallerDep, _: fresh("memberships"), container: ContainerDep) -> OrgList:
    principal = caller.principal
    if principal.api_key_id is not None:
        container.app.grant(principal, principal.key_org_id)  # a disabled key lists nothing (401)
        row = container.memberships.organisation(str(principal.key_org_id))
        items = [OrgSummary(id=row["org_id"], name=row["name"], plan=row["plan"], role=None)] if row else []
    else:
        items = [OrgSummary(id=o["org_id"], name=o["name"], plan=o["plan"], role=o["role"])
                 for o in container.memberships.orgs_of(str(principal.user_id))]
    return OrgList(items=items)


@router.get("/{org_id}", response_model=OrgOut, summary="An organisation: plan, limits, usage, your role")
def get_org(org_id: str, caller: CallerDep, container: ContainerDep) -> OrgOut:
    """Answered from the Organisation aggregate (strongly consistent)."""
    org = parse_id(org_id, "ORG_NOT_FOUND", "organisation")
    grant = container.app.grant(caller.principal, org, Permission.PROMPTS_READ)
    return org_view(grant, container.app.prompts_used(grant.org))


@router.patch("/{org_id}", response_model=OrgUpdated, summary="Rename, change plan or protected labels (org:manage)")
def update_org(scope: MemberScope, body: OrgPatch, response: Response, container: ContainerDep,
               rid: RequestId) -> OrgUpdated:
    if body.name is None and body.plan is None and body.protected_labels is None and body.review_policies is None:
        raise ApiError(422, "EMPTY_PATCH", "give at least one of name, plan, protected_labels, review_policies")
    policies = ({k: v.model_dump() for k, v in body.review_policies.items()}
                if body.review_policies is not None else None)
    result = container.app.update_organisation(scope.principal, scope.org_id, rid, name=body.name, plan=body.plan,
                                               protected_labels=body.protected_labels, review_policies=policies)
    position = result.position or container.app.head_position()
    command_headers(response, position)
    return OrgUpdated(id=str(scope.org_id), position=position)
