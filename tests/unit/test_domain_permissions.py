"""The role → permission table, label permissions, role/permission/plan parsing."""
from __future__ import annotations

import pytest

from domain.errors import Invalid
from domain.permissions import (
    PLAN_LIMITS, ROLE_PERMISSIONS, Permission, Plan, PlanLimits, Role, label_permission, parse_permissions,
    parse_plan, parse_role,
)
from tests.unit.domain_helpers import refused

ALL = {p.value for p in Permission}


def granted(role: str) -> set[str]:
    return {p.value for p in ROLE_PERMISSIONS[Role(role)]}


def test_permission_catalogue():
    assert ALL == {"prompts:read", "prompts:write", "prompts:promote", "prompts:review", "members:manage", "api_keys:manage",
                   "audit:read", "org:manage"}


def test_every_role_has_an_entry():
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert [r.value for r in Role] == ["owner", "admin", "developer", "reviewer", "viewer"]


def test_owner_has_every_permission():
    assert granted("owner") == ALL


def test_admin_has_everything_but_org_manage():
    assert granted("admin") == ALL - {"org:manage"}


def test_developer_reads_and_writes():
    assert granted("developer") == {"prompts:read", "prompts:write"}


def test_reviewer_reads_promotes_reviews_and_audits():
    """The reviewer gains exactly prompts:review (governance): approving or rejecting review requests."""
    assert granted("reviewer") == {"prompts:read", "prompts:promote", "prompts:review", "audit:read"}


def test_only_reviewers_admins_and_owners_review():
    assert {r for r in ("owner", "admin", "developer", "reviewer", "viewer") if "prompts:review" in granted(r)} == {
        "owner", "admin", "reviewer"}


def test_viewer_only_reads():
    assert granted("viewer") == {"prompts:read"}


def test_production_label_needs_promote_other_labels_need_write():
    assert label_permission("production") is Permission.PROMPTS_PROMOTE
    assert label_permission("staging") is Permission.PROMPTS_WRITE
    assert label_permission("canary") is Permission.PROMPTS_WRITE


def test_parse_role():
    assert parse_role("reviewer") is Role.REVIEWER
    refused(None, lambda: parse_role("Owner"), kind=Invalid, code="UNKNOWN_ROLE")


def test_parse_permissions_accepts_known_and_names_unknown():
    assert parse_permissions(["prompts:read", "prompts:read", "audit:read"]) == {
        Permission.PROMPTS_READ, Permission.AUDIT_READ}
    error = refused(None, lambda: parse_permissions(["prompts:read", "prompts:delete", "root"]), kind=Invalid,
                    code="UNKNOWN_PERMISSION")
    assert error.details["unknown"] == ["prompts:delete", "root"]


@pytest.mark.parametrize("value", ["free", "GOLD", ""])
def test_parse_plan_rejects_unknown(value):
    refused(None, lambda: parse_plan(value), kind=Invalid, code="UNKNOWN_PLAN")


def test_plan_limits():
    assert parse_plan("PRO") is Plan.PRO
    assert PLAN_LIMITS[Plan.FREE] == PlanLimits(members=5, prompts=100, api_keys=3)
    pro, free = PLAN_LIMITS[Plan.PRO], PLAN_LIMITS[Plan.FREE]
    assert pro.members > free.members and pro.prompts > free.prompts and pro.api_keys > free.api_keys
