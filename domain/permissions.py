"""Roles, permissions and plans: the single source of truth for who may do what.

| role      | prompts:read | prompts:write | prompts:promote | prompts:review | members:manage | api_keys:manage | audit:read | org:manage |
|-----------|:-:|:-:|:-:|:-:|:-:|:-:|:-:|:-:|
| owner     | x | x | x | x | x | x | x | x |
| admin     | x | x | x | x | x | x | x |   |
| developer | x | x |   |   |   |   |   |   |
| reviewer  | x |   | x | x |   |   | x |   |
| viewer    | x |   |   |   |   |   |   |   |

`org:manage` covers renaming the organisation, changing its plan and its protected labels.
`prompts:promote` requests changes of protected labels (and moves `production` when it is not
protected); `prompts:review` approves or rejects them. Only owners may grant, change or remove the
owner role (admins manage everyone else).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from domain.errors import Invalid


class Permission(str, Enum):
    PROMPTS_READ = "prompts:read"
    PROMPTS_WRITE = "prompts:write"
    PROMPTS_PROMOTE = "prompts:promote"
    PROMPTS_REVIEW = "prompts:review"
    MEMBERS_MANAGE = "members:manage"
    API_KEYS_MANAGE = "api_keys:manage"
    AUDIT_READ = "audit:read"
    ORG_MANAGE = "org:manage"


class Role(str, Enum):
    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    REVIEWER = "reviewer"
    VIEWER = "viewer"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission) - {P.ORG_MANAGE},
    Role.DEVELOPER: frozenset({P.PROMPTS_READ, P.PROMPTS_WRITE}),
    Role.REVIEWER: frozenset({P.PROMPTS_READ, P.PROMPTS_PROMOTE, P.PROMPTS_REVIEW, P.AUDIT_READ}),
    Role.VIEWER: frozenset({P.PROMPTS_READ}),
}

#: Labels whose moves need `prompts:promote`; other labels need `prompts:write`. (Whether a label is
#: *protected*, i.e. changed only through review, is each organisation's setting.)
PROMOTE_LABELS = frozenset({"production"})


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Invalid(
            f"Unknown role {value!r}",
            code="UNKNOWN_ROLE",
            details={"role": value, "allowed": [r.value for r in Role]},
        ) from None


def parse_permissions(values: list[str]) -> frozenset[Permission]:
    unknown = [v for v in values if v not in {p.value for p in Permission}]
    if unknown:
        raise Invalid(
            "Unknown permissions",
            code="UNKNOWN_PERMISSION",
            details={"unknown": unknown, "allowed": [p.value for p in Permission]},
        )
    return frozenset(Permission(v) for v in values)


def label_permission(label: str) -> Permission:
    return P.PROMPTS_PROMOTE if label in PROMOTE_LABELS else P.PROMPTS_WRITE


class Plan(str, Enum):
    FREE = "FREE"
    PRO = "PRO"


@dataclass(frozen=True)
class PlanLimits:
    members: int
    prompts: int
    api_keys: int


PLAN_LIMITS: dict[Plan, PlanLimits] = {
    Plan.FREE: PlanLimits(members=5, prompts=100, api_keys=3),
    Plan.PRO: PlanLimits(members=500, prompts=100_000, api_keys=100),
}


def parse_plan(value: str) -> Plan:
    try:
        return Plan(value)
    except ValueError:
        raise Invalid(
            f"Unknown plan {value!r}", code="UNKNOWN_PLAN", details={"allowed": [p.value for p in Plan]}
        ) from None
