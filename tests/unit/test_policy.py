"""application.policy.AccessPolicy: what a user or an API key may do in one organisation, now.

Aggregates are built in memory (given events, as the application loads them) and handed to the
policy through the same loader functions the application passes (`load_org`, `load_key`).
"""
from __future__ import annotations

from uuid import UUID

import pytest

from application.policy import MAX_ISSUER_CHAIN, AccessPolicy, Grant, org_not_found
from application.principal import Principal
from domain.api_key import ApiKey
from domain.errors import Forbidden, NotFound, Unauthenticated
from domain.organisation import Organisation
from domain.permissions import ROLE_PERMISSIONS, Permission, Role
from tests.unit.domain_helpers import by, given, history, refused

P = Permission
ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
OTHER_ORG = UUID("00000000-0000-4000-8000-00000000000b")
OWNER = UUID("00000000-0000-4000-8000-000000000001")
ADMIN = UUID("00000000-0000-4000-8000-000000000002")
DEV = UUID("00000000-0000-4000-8000-000000000003")
REVIEWER = UUID("00000000-0000-4000-8000-000000000004")
VIEWER = UUID("00000000-0000-4000-8000-000000000005")
STRANGER = UUID("00000000-0000-4000-8000-0000000000ff")
MEMBERS = {OWNER: Role.OWNER, ADMIN: Role.ADMIN, DEV: Role.DEVELOPER, REVIEWER: Role.REVIEWER, VIEWER: Role.VIEWER}

ADMIN_KEY = UUID("00000000-0000-4000-8000-0000000000c1")
CHILD_KEY = UUID("00000000-0000-4000-8000-0000000000c2")
OWNER_KEY = UUID("00000000-0000-4000-8000-0000000000c3")
FOREIGN_KEY = UUID("00000000-0000-4000-8000-0000000000c9")

MANAGING = ["api_keys:manage", "members:manage", "prompts:read", "prompts:write"]


def user(uid: UUID) -> str:
    return f"user:{uid}"


def api_key(kid: UUID) -> str:
    return f"api_key:{kid}"


class World:
    """Organisations and keys in memory, loaded by the policy as the application loads them."""

    def __init__(self) -> None:
        self.orgs: dict[UUID, Organisation] = {}
        self.org_events: dict[UUID, list] = {}
        self.keys: dict[UUID, ApiKey] = {}
        self.policy = AccessPolicy(self.load_org, self.load_key)

    def load_org(self, org_id: UUID) -> Organisation:
        if org_id not in self.orgs:
            raise org_not_found()
        return self.orgs[org_id]

    def load_key(self, key_id: UUID) -> ApiKey | None:
        return self.keys.get(key_id)

    # -- building state ---------------------------------------------------------------------
    def org(self, org_id: UUID = ORG_ID, owner: UUID = OWNER, members: dict[UUID, Role] | None = None) -> Organisation:
        with by(user(owner), "req-create"):
            org = Organisation.create(org_id, "Acme", owner, plan="PRO")
            for uid, role in (members or {}).items():
                if uid != owner:
                    org.add_member(uid, role.value, Role.OWNER)
        self.org_events[org_id] = history(org)
        self.orgs[org_id] = given(self.org_events[org_id])
        return self.orgs[org_id]

    def change(self, command, org_id: UUID = ORG_ID) -> None:
        """Run `command(org)` as the owner and reload the organisation from its events."""
        org = self.orgs[org_id]
        with by(user(OWNER), "req-change"):
            command(org)
        pending = history(org)
        assert pending, "the change must emit events"
        self.org_events[org_id] += pending
        self.orgs[org_id] = given(self.org_events[org_id])

    def key(self, key_id: UUID, permissions: list[str], issued_by: str, org_id: UUID = ORG_ID) -> ApiKey:
        with by(issued_by, "req-issue"):
            key = ApiKey.issue(key_id, org_id, f"key {key_id.int}", "pfk_0", "hash", permissions, issued_by=issued_by)
        self.keys[key_id] = given(history(key))
        return self.keys[key_id]

    def revoke(self, key_id: UUID) -> None:
        key = self.keys[key_id]
        with by(user(OWNER), "req-revoke"):
            key.revoke()
        history(key)

    # -- asking -----------------------------------------------------------------------------
    def grant_user(self, uid: UUID, org_id: UUID = ORG_ID) -> Grant:
        return self.policy.grant(Principal.user(uid), org_id)

    def grant_key(self, key_id: UUID, org_id: UUID = ORG_ID) -> Grant:
        key = self.keys[key_id]  # the principal is what authentication builds from the key aggregate
        return self.policy.grant(Principal.api_key(key.id, key.org_id, key.permissions, key.issued_by), org_id)


@pytest.fixture
def world() -> World:
    w = World()
    w.org(members=MEMBERS)
    w.org(OTHER_ORG, owner=STRANGER)
    return w


def names(permissions) -> set[str]:
    return {p.value for p in permissions}


# -- users ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("uid", list(MEMBERS), ids=[r.value for r in MEMBERS.values()])
def test_a_users_grant_is_their_roles_permissions(world, uid):
    grant = world.grant_user(uid)

    role = MEMBERS[uid]
    assert grant.permissions == ROLE_PERMISSIONS[role]
    assert grant.permission_names == names(ROLE_PERMISSIONS[role])
    assert (grant.role, grant.acting_role, grant.is_api_key) == (role, role, False)
    assert grant.org is world.orgs[ORG_ID]


def test_a_non_member_is_told_the_organisation_does_not_exist(world):
    refused(None, lambda: world.grant_user(STRANGER), kind=NotFound, code="ORG_NOT_FOUND")
    refused(None, lambda: world.grant_user(OWNER, OTHER_ORG), kind=NotFound, code="ORG_NOT_FOUND")


def test_an_unknown_organisation_is_not_found(world):
    refused(None, lambda: world.grant_user(OWNER, UUID(int=12345)), kind=NotFound, code="ORG_NOT_FOUND")


def test_require_returns_the_grant_when_the_role_allows(world):
    grant = world.grant_user(DEV)

    assert grant.require(P.PROMPTS_WRITE) is grant
    assert grant.allows(P.PROMPTS_READ) and not grant.allows(P.PROMPTS_PROMOTE)
    assert world.grant_user(OWNER).require(P.ORG_MANAGE).role is Role.OWNER
    assert world.grant_user(ADMIN).require(P.MEMBERS_MANAGE).role is Role.ADMIN


def test_require_refuses_a_member_lacking_the_permission_naming_permission_and_role(world):
    refused(None, lambda: world.grant_user(DEV).require(P.PROMPTS_PROMOTE), kind=Forbidden,
            code="PERMISSION_DENIED", details={"required": "prompts:promote", "role": "developer"})
    refused(None, lambda: world.grant_user(ADMIN).require(P.ORG_MANAGE), kind=Forbidden,
            code="PERMISSION_DENIED", details={"required": "org:manage", "role": "admin"})
    refused(None, lambda: world.grant_user(VIEWER).require(P.AUDIT_READ), kind=Forbidden,
            code="PERMISSION_DENIED", details={"required": "audit:read", "role": "viewer"})


def test_a_users_grant_follows_role_changes_and_removal(world):
    world.change(lambda org: org.change_role(DEV, "viewer", Role.OWNER))
    world.change(lambda org: org.remove_member(ADMIN, Role.OWNER))

    refused(None, lambda: world.grant_user(DEV).require(P.PROMPTS_WRITE), kind=Forbidden, code="PERMISSION_DENIED",
            details={"required": "prompts:write", "role": "viewer"})
    refused(None, lambda: world.grant_user(ADMIN), kind=NotFound, code="ORG_NOT_FOUND")


# -- API keys ------------------------------------------------------------------------------------


def test_a_keys_grant_is_its_own_permissions_within_its_issuers(world):
    world.key(ADMIN_KEY, MANAGING, user(ADMIN))

    grant = world.grant_key(ADMIN_KEY)

    assert grant.permission_names == set(MANAGING)
    assert (grant.role, grant.is_api_key) == (None, True)
    assert grant.org is world.orgs[ORG_ID]


def test_a_key_never_has_more_than_its_own_permissions(world):
    world.key(ADMIN_KEY, ["prompts:read"], user(OWNER))

    assert world.grant_key(ADMIN_KEY).permission_names == {"prompts:read"}


def test_demoting_the_issuer_narrows_the_key_at_once(world):
    world.key(ADMIN_KEY, MANAGING, user(ADMIN))

    world.change(lambda org: org.change_role(ADMIN, "developer", Role.OWNER))

    grant = world.grant_key(ADMIN_KEY)
    assert grant.permission_names == {"prompts:read", "prompts:write"}
    refused(None, lambda: grant.require(P.MEMBERS_MANAGE), kind=Forbidden, code="PERMISSION_DENIED",
            details={"required": "members:manage"})
    refused(None, lambda: grant.require(P.API_KEYS_MANAGE), kind=Forbidden, code="PERMISSION_DENIED",
            details={"required": "api_keys:manage"})
    assert grant.require(P.PROMPTS_WRITE) is grant


def test_promoting_the_issuer_never_widens_the_key_beyond_its_own(world):
    world.key(ADMIN_KEY, ["prompts:read"], user(DEV))

    world.change(lambda org: org.change_role(DEV, "owner", Role.OWNER))

    assert world.grant_key(ADMIN_KEY).permission_names == {"prompts:read"}


def test_removing_the_issuer_disables_the_key(world):
    world.key(ADMIN_KEY, MANAGING, user(ADMIN))

    world.change(lambda org: org.remove_member(ADMIN, Role.OWNER))

    refused(None, lambda: world.grant_key(ADMIN_KEY), kind=Unauthenticated, code="API_KEY_DISABLED")


def test_a_key_issued_by_someone_who_is_not_a_member_is_disabled(world):
    world.key(ADMIN_KEY, ["prompts:read"], user(STRANGER))

    refused(None, lambda: world.grant_key(ADMIN_KEY), kind=Unauthenticated, code="API_KEY_DISABLED")


@pytest.mark.parametrize("issued_by", ["", "user:", "user:not-a-uuid", "robot:x", "nobody"])
def test_a_key_whose_issuer_cannot_be_established_is_disabled(world, issued_by):
    world.key(ADMIN_KEY, ["prompts:read"], issued_by)

    refused(None, lambda: world.grant_key(ADMIN_KEY), kind=Unauthenticated, code="API_KEY_DISABLED")


def test_a_key_is_not_found_in_another_organisation(world):
    world.key(ADMIN_KEY, MANAGING, user(OWNER))

    refused(None, lambda: world.grant_key(ADMIN_KEY, OTHER_ORG), kind=NotFound, code="ORG_NOT_FOUND")
    refused(None, lambda: world.grant_key(ADMIN_KEY, UUID(int=12345)), kind=NotFound, code="ORG_NOT_FOUND")


def test_a_key_of_another_organisation_is_not_found_here(world):
    """Even when its issuer is a member here too: the key's own organisation decides."""
    world.change(lambda org: org.add_member(STRANGER, "admin", Role.OWNER))
    world.key(FOREIGN_KEY, MANAGING, user(STRANGER), org_id=OTHER_ORG)

    refused(None, lambda: world.grant_key(FOREIGN_KEY, ORG_ID), kind=NotFound, code="ORG_NOT_FOUND")
    assert world.grant_key(FOREIGN_KEY, OTHER_ORG).permission_names == set(MANAGING)


def test_keys_act_as_admin_at_most_even_when_issued_by_an_owner(world):
    world.key(OWNER_KEY, [p.value for p in Permission], user(OWNER))

    grant = world.grant_key(OWNER_KEY)

    assert grant.permissions == frozenset(Permission)
    assert grant.role is None
    assert grant.acting_role is Role.ADMIN


def test_require_refuses_a_key_naming_only_the_permission(world):
    world.key(ADMIN_KEY, ["prompts:read"], user(OWNER))

    refused(None, lambda: world.grant_key(ADMIN_KEY).require(P.PROMPTS_WRITE), kind=Forbidden,
            code="PERMISSION_DENIED", details={"required": "prompts:write"})


# -- legacy keys minted by keys ------------------------------------------------------------------


def test_a_legacy_key_minted_by_a_key_is_bounded_by_that_key_and_its_issuer(world):
    world.key(ADMIN_KEY, ["prompts:read", "prompts:write", "prompts:promote"], user(ADMIN))
    world.key(CHILD_KEY, ["prompts:read", "prompts:write", "audit:read", "members:manage"], api_key(ADMIN_KEY))

    assert world.grant_key(CHILD_KEY).permission_names == {"prompts:read", "prompts:write"}

    world.change(lambda org: org.change_role(ADMIN, "viewer", Role.OWNER))

    assert world.grant_key(CHILD_KEY).permission_names == {"prompts:read"}
    assert world.grant_key(CHILD_KEY).acting_role is Role.ADMIN


def test_a_legacy_key_dies_with_the_key_that_minted_it(world):
    world.key(ADMIN_KEY, MANAGING, user(ADMIN))
    world.key(CHILD_KEY, ["prompts:read"], api_key(ADMIN_KEY))
    assert world.grant_key(CHILD_KEY).permission_names == {"prompts:read"}

    world.revoke(ADMIN_KEY)

    refused(None, lambda: world.grant_key(CHILD_KEY), kind=Unauthenticated, code="API_KEY_REVOKED")


def test_a_legacy_key_whose_parent_is_unknown_or_elsewhere_is_revoked(world):
    world.key(CHILD_KEY, ["prompts:read"], api_key(UUID(int=404)))
    refused(None, lambda: world.grant_key(CHILD_KEY), kind=Unauthenticated, code="API_KEY_REVOKED")

    world.key(CHILD_KEY, ["prompts:read"], "api_key:not-a-uuid")
    refused(None, lambda: world.grant_key(CHILD_KEY), kind=Unauthenticated, code="API_KEY_REVOKED")

    world.key(FOREIGN_KEY, ["prompts:read"], user(STRANGER), org_id=OTHER_ORG)
    world.key(CHILD_KEY, ["prompts:read"], api_key(FOREIGN_KEY))
    refused(None, lambda: world.grant_key(CHILD_KEY), kind=Unauthenticated, code="API_KEY_REVOKED")


def test_a_legacy_key_is_disabled_when_the_person_behind_its_parent_leaves(world):
    world.key(ADMIN_KEY, MANAGING, user(ADMIN))
    world.key(CHILD_KEY, ["prompts:read"], api_key(ADMIN_KEY))

    world.change(lambda org: org.remove_member(ADMIN, Role.OWNER))

    refused(None, lambda: world.grant_key(ADMIN_KEY), kind=Unauthenticated, code="API_KEY_DISABLED")
    refused(None, lambda: world.grant_key(CHILD_KEY), kind=Unauthenticated, code="API_KEY_DISABLED")


def test_a_cycle_of_keys_minting_each_other_is_disabled_not_followed_forever(world):
    world.key(ADMIN_KEY, ["prompts:read"], api_key(CHILD_KEY))
    world.key(CHILD_KEY, ["prompts:read"], api_key(ADMIN_KEY))

    refused(None, lambda: world.grant_key(CHILD_KEY), kind=Unauthenticated, code="API_KEY_DISABLED")


def test_a_chain_of_keys_is_followed_up_to_the_bound(world):
    chain = [UUID(int=0xC000 + i) for i in range(MAX_ISSUER_CHAIN + 2)]
    world.key(chain[0], ["prompts:read"], user(OWNER))
    for parent, child in zip(chain, chain[1:]):
        world.key(child, ["prompts:read"], api_key(parent))

    assert world.grant_key(chain[MAX_ISSUER_CHAIN]).permission_names == {"prompts:read"}
    refused(None, lambda: world.grant_key(chain[MAX_ISSUER_CHAIN + 1]), kind=Unauthenticated,
            code="API_KEY_DISABLED")
