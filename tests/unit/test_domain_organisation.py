"""Organisation (the tenant): members, roles, plan, usage counters and `require()`."""
from __future__ import annotations

import random
from uuid import UUID, uuid4

import pytest

from domain.errors import Conflict, DomainError, Forbidden, Invalid, LimitExceeded, NotFound
from domain.organisation import Organisation
from domain.permissions import PLAN_LIMITS, Permission, Plan, Role
from tests.unit.domain_helpers import ACTOR, REQUEST, given, history, refused, replay, then

ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
OWNER = UUID("00000000-0000-4000-8000-000000000001")
ADMIN = UUID("00000000-0000-4000-8000-000000000002")
DEV = UUID("00000000-0000-4000-8000-000000000003")
OWNER2 = UUID("00000000-0000-4000-8000-000000000004")
STRANGER = UUID("00000000-0000-4000-8000-0000000000ff")


def created(plan: str = "FREE") -> list:
    return history(Organisation.create(ORG_ID, "Acme", OWNER, f"user:{OWNER}", "req-create", plan=plan))


def with_members(*members: tuple[UUID, str], plan: str = "FREE") -> list:
    """Events of an org created by OWNER and then given `members` (added by the owner)."""
    org = given(created(plan))
    for user_id, role in members:
        org.add_member(user_id, role, Role.OWNER, f"user:{OWNER}", f"req-add-{user_id}")
    return created(plan) + history(org)


def team() -> list:
    return with_members((ADMIN, "admin"), (DEV, "developer"))


# -- create --------------------------------------------------------------------------------------


def test_create_emits_created_and_owner_is_the_only_member():
    org = Organisation.create(ORG_ID, "  Acme Corp ", OWNER, ACTOR, REQUEST, request_hash="fp")

    assert then(org) == [("Created", {
        "name": "Acme Corp", "plan": "FREE", "owner_id": OWNER, "actor": ACTOR, "request_id": REQUEST,
        "request_hash": "fp",
    })]
    assert org.id == org.org_id == ORG_ID
    assert org.members == {str(OWNER): "owner"}
    assert org.role_of(OWNER) is Role.OWNER
    assert org.owners() == [str(OWNER)]
    assert (org.prompt_count, org.active_api_keys) == (0, 0)


def test_create_with_pro_plan():
    org = given(created("PRO"))

    assert org.plan == "PRO"
    assert org.limits == PLAN_LIMITS[Plan.PRO]


def test_create_with_unknown_plan_is_refused():
    refused(None, lambda: Organisation.create(ORG_ID, "Acme", OWNER, ACTOR, REQUEST, plan="GOLD"),
            kind=Invalid, code="UNKNOWN_PLAN", details={"allowed": ["FREE", "PRO"]})


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "Acme\x07", "Acme\u200b", "Acme/Corp"],
                         ids=["empty", "blank", "too-long", "control-char", "format-char", "slash"])
def test_create_with_bad_name_is_refused(name):
    refused(None, lambda: Organisation.create(ORG_ID, name, OWNER, ACTOR, REQUEST), kind=Invalid, code="INVALID_NAME")


def test_create_accepts_a_name_of_exactly_the_maximum_length():
    assert given(history(Organisation.create(ORG_ID, "x" * 200, OWNER, ACTOR, REQUEST))).name == "x" * 200


# -- rename --------------------------------------------------------------------------------------


def test_rename_emits_renamed():
    org = given(created())

    org.rename(" Acme Inc ", ACTOR, REQUEST)

    assert then(org) == [("Renamed", {"name": "Acme Inc", "actor": ACTOR, "request_id": REQUEST})]
    assert org.name == "Acme Inc"


def test_rename_to_the_same_name_emits_nothing():
    org = given(created())

    org.rename("  Acme ", ACTOR, REQUEST)

    assert then(org) == []


def test_rename_to_an_invalid_name_is_refused():
    org = given(created())

    refused(org, lambda: org.rename("a/b", ACTOR, REQUEST), kind=Invalid, code="INVALID_NAME")
    assert org.name == "Acme"


# -- add_member ----------------------------------------------------------------------------------


def test_add_member_emits_member_added():
    org = given(created())

    org.add_member(DEV, "developer", Role.OWNER, ACTOR, REQUEST)

    assert then(org) == [("MemberAdded", {"user_id": DEV, "role": "developer", "actor": ACTOR, "request_id": REQUEST,
                                          "idempotency": "", "request_hash": ""})]
    assert org.role_of(DEV) is Role.DEVELOPER


def test_admin_may_add_non_owner_members():
    org = given(team())

    org.add_member(OWNER2, "reviewer", Role.ADMIN, f"user:{ADMIN}", REQUEST)

    assert then(org) == [("MemberAdded", {"user_id": OWNER2, "role": "reviewer", "actor": f"user:{ADMIN}",
                                          "request_id": REQUEST, "idempotency": "", "request_hash": ""})]


def test_owner_may_grant_owner():
    org = given(created())

    org.add_member(OWNER2, "owner", Role.OWNER, ACTOR, REQUEST)

    assert then(org)[0][1]["role"] == "owner"
    assert sorted(org.owners()) == sorted([str(OWNER), str(OWNER2)])


def test_add_member_with_unknown_role_is_refused():
    org = given(created())

    error = refused(org, lambda: org.add_member(DEV, "superuser", Role.OWNER, ACTOR, REQUEST),
                    kind=Invalid, code="UNKNOWN_ROLE")
    assert error.details["role"] == "superuser"
    assert error.details["allowed"] == ["owner", "admin", "developer", "reviewer", "viewer"]


def test_add_existing_member_is_refused():
    org = given(team())

    refused(org, lambda: org.add_member(DEV, "viewer", Role.OWNER, ACTOR, REQUEST), kind=Conflict,
            code="MEMBER_EXISTS", details={"user_id": str(DEV)})
    assert org.role_of(DEV) is Role.DEVELOPER


def test_admin_granting_owner_is_refused():
    org = given(team())

    refused(org, lambda: org.add_member(OWNER2, "owner", Role.ADMIN, ACTOR, REQUEST), kind=Forbidden,
            code="OWNER_ROLE_REQUIRED")
    assert org.role_of(OWNER2) is None


def test_add_member_beyond_the_plan_limit_is_refused_with_details():
    limit = PLAN_LIMITS[Plan.FREE].members
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(limit - 1)]))
    assert len(org.members) == limit

    error = refused(org, lambda: org.add_member(STRANGER, "viewer", Role.OWNER, ACTOR, REQUEST),
                    kind=LimitExceeded, code="PLAN_LIMIT_EXCEEDED", details={"resource": "members", "limit": limit})
    assert isinstance(error, DomainError)


def test_add_member_up_to_the_plan_limit_is_allowed():
    limit = PLAN_LIMITS[Plan.FREE].members
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(limit - 2)]))

    org.add_member(STRANGER, "viewer", Role.OWNER, ACTOR, REQUEST)

    assert [name for name, _ in then(org)] == ["MemberAdded"]
    assert len(org.members) == limit


def test_pro_plan_allows_more_members_than_free():
    free_limit = PLAN_LIMITS[Plan.FREE].members
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(free_limit - 1)], plan="PRO"))

    org.add_member(STRANGER, "viewer", Role.OWNER, ACTOR, REQUEST)

    assert len(then(org)) == 1


# -- change_role ---------------------------------------------------------------------------------


def test_change_role_emits_old_and_new_role():
    org = given(team())

    org.change_role(DEV, "reviewer", Role.ADMIN, f"user:{ADMIN}", REQUEST)

    assert then(org) == [("MemberRoleChanged", {
        "user_id": DEV, "old_role": "developer", "new_role": "reviewer", "actor": f"user:{ADMIN}",
        "request_id": REQUEST,
    })]
    assert org.role_of(DEV) is Role.REVIEWER


def test_change_role_to_the_same_role_emits_nothing():
    org = given(team())

    org.change_role(DEV, "developer", Role.OWNER, ACTOR, REQUEST)

    assert then(org) == []


def test_demoting_the_last_owner_is_refused():
    org = given(team())

    refused(org, lambda: org.change_role(OWNER, "admin", Role.OWNER, ACTOR, REQUEST), kind=Conflict, code="LAST_OWNER")
    assert org.role_of(OWNER) is Role.OWNER


def test_demoting_one_of_two_owners_is_allowed():
    org = given(with_members((OWNER2, "owner")))

    org.change_role(OWNER, "admin", Role.OWNER, f"user:{OWNER2}", REQUEST)

    assert then(org) == [("MemberRoleChanged", {
        "user_id": OWNER, "old_role": "owner", "new_role": "admin", "actor": f"user:{OWNER2}", "request_id": REQUEST,
    })]
    assert org.owners() == [str(OWNER2)]


def test_admin_changing_an_owner_is_refused():
    org = given(with_members((ADMIN, "admin"), (OWNER2, "owner")))

    refused(org, lambda: org.change_role(OWNER2, "viewer", Role.ADMIN, ACTOR, REQUEST), kind=Forbidden,
            code="OWNER_ROLE_REQUIRED")
    assert org.role_of(OWNER2) is Role.OWNER


def test_admin_promoting_to_owner_is_refused():
    org = given(team())

    refused(org, lambda: org.change_role(DEV, "owner", Role.ADMIN, ACTOR, REQUEST), kind=Forbidden,
            code="OWNER_ROLE_REQUIRED")


def test_owner_promoting_to_owner_is_allowed():
    org = given(team())

    org.change_role(ADMIN, "owner", Role.OWNER, ACTOR, REQUEST)

    assert then(org) == [("MemberRoleChanged", {
        "user_id": ADMIN, "old_role": "admin", "new_role": "owner", "actor": ACTOR, "request_id": REQUEST,
    })]
    assert org.role_of(ADMIN) is Role.OWNER


def test_change_role_of_unknown_member_is_refused():
    org = given(team())

    refused(org, lambda: org.change_role(STRANGER, "viewer", Role.OWNER, ACTOR, REQUEST), kind=NotFound,
            code="MEMBER_NOT_FOUND")


def test_change_role_to_unknown_role_is_refused():
    org = given(team())

    refused(org, lambda: org.change_role(DEV, "god", Role.OWNER, ACTOR, REQUEST), kind=Invalid, code="UNKNOWN_ROLE")


# -- remove_member -------------------------------------------------------------------------------


def test_remove_member_emits_member_removed_with_role():
    org = given(team())

    org.remove_member(DEV, Role.ADMIN, f"user:{ADMIN}", REQUEST)

    assert then(org) == [("MemberRemoved", {"user_id": DEV, "role": "developer", "actor": f"user:{ADMIN}",
                                            "request_id": REQUEST})]
    assert org.role_of(DEV) is None


def test_removing_the_last_owner_is_refused():
    org = given(team())

    refused(org, lambda: org.remove_member(OWNER, Role.OWNER, ACTOR, REQUEST), kind=Conflict, code="LAST_OWNER")
    assert org.role_of(OWNER) is Role.OWNER


def test_owner_may_remove_a_second_owner():
    org = given(with_members((OWNER2, "owner")))

    org.remove_member(OWNER2, Role.OWNER, ACTOR, REQUEST)

    assert then(org) == [("MemberRemoved", {"user_id": OWNER2, "role": "owner", "actor": ACTOR, "request_id": REQUEST})]
    assert org.owners() == [str(OWNER)]


def test_admin_removing_an_owner_is_refused():
    org = given(with_members((ADMIN, "admin"), (OWNER2, "owner")))

    refused(org, lambda: org.remove_member(OWNER2, Role.ADMIN, ACTOR, REQUEST), kind=Forbidden,
            code="OWNER_ROLE_REQUIRED")


def test_remove_unknown_member_is_refused():
    org = given(team())

    refused(org, lambda: org.remove_member(STRANGER, Role.OWNER, ACTOR, REQUEST), kind=NotFound,
            code="MEMBER_NOT_FOUND")


def test_removed_member_can_be_added_again():
    org = given(team())
    org.remove_member(DEV, Role.OWNER, ACTOR, "r1")
    replayed = given(team(), history(org))

    replayed.add_member(DEV, "viewer", Role.OWNER, ACTOR, "r2")

    assert then(replayed)[0][0] == "MemberAdded"
    assert replayed.role_of(DEV) is Role.VIEWER


# -- plan ----------------------------------------------------------------------------------------


def test_change_plan_free_to_pro_emits_plan_changed():
    org = given(created())

    org.change_plan("PRO", ACTOR, REQUEST)

    assert then(org) == [("PlanChanged", {"plan": "PRO", "actor": ACTOR, "request_id": REQUEST})]
    assert org.limits == PLAN_LIMITS[Plan.PRO]


def test_change_plan_to_the_current_plan_emits_nothing():
    org = given(created())

    org.change_plan("FREE", ACTOR, REQUEST)

    assert then(org) == []


def test_change_plan_to_unknown_plan_is_refused():
    org = given(created())

    refused(org, lambda: org.change_plan("ENTERPRISE", ACTOR, REQUEST), kind=Invalid, code="UNKNOWN_PLAN")


def test_downgrade_within_the_smaller_limits_is_allowed():
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(PLAN_LIMITS[Plan.FREE].members - 1)], plan="PRO"))

    org.change_plan("FREE", ACTOR, REQUEST)

    assert then(org) == [("PlanChanged", {"plan": "FREE", "actor": ACTOR, "request_id": REQUEST})]


def test_downgrade_blocked_by_member_usage():
    members = PLAN_LIMITS[Plan.FREE].members + 1
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(members - 1)], plan="PRO"))

    refused(org, lambda: org.change_plan("FREE", ACTOR, REQUEST), kind=LimitExceeded, code="PLAN_DOWNGRADE_BLOCKED",
            details={"members": members, "prompts": 0, "api_keys": 0})
    assert org.plan == "PRO"


def test_downgrade_blocked_by_api_key_usage():
    keys = PLAN_LIMITS[Plan.FREE].api_keys + 1
    org = given(created("PRO"))
    for _ in range(keys):
        org.reserve_api_key(uuid4(), ACTOR, REQUEST)
    org = given(created("PRO"), history(org))

    refused(org, lambda: org.change_plan("FREE", ACTOR, REQUEST), kind=LimitExceeded, code="PLAN_DOWNGRADE_BLOCKED",
            details={"members": 1, "prompts": 0, "api_keys": keys})


def test_downgrade_blocked_by_prompt_usage():
    prompts = PLAN_LIMITS[Plan.FREE].prompts + 1
    org = given(created("PRO"))
    for _ in range(prompts):
        org.reserve_prompt(uuid4(), ACTOR, REQUEST)
    org = given(created("PRO"), history(org))

    refused(org, lambda: org.change_plan("FREE", ACTOR, REQUEST), kind=LimitExceeded, code="PLAN_DOWNGRADE_BLOCKED",
            details={"members": 1, "prompts": prompts, "api_keys": 0})


# -- usage counters ------------------------------------------------------------------------------


def test_reserve_prompt_emits_prompt_added_and_counts():
    org = given(created())
    prompt_id = uuid4()

    org.reserve_prompt(prompt_id, ACTOR, REQUEST)

    assert then(org) == [("PromptAdded", {"prompt_id": prompt_id, "actor": ACTOR, "request_id": REQUEST})]
    assert org.prompt_count == 1


def test_reserve_prompt_beyond_the_plan_limit_is_refused():
    limit = PLAN_LIMITS[Plan.FREE].prompts
    org = given(created())
    for _ in range(limit):
        org.reserve_prompt(uuid4(), ACTOR, REQUEST)
    org = given(created(), history(org))
    assert org.prompt_count == limit

    refused(org, lambda: org.reserve_prompt(uuid4(), ACTOR, REQUEST), kind=LimitExceeded, code="PLAN_LIMIT_EXCEEDED",
            details={"resource": "prompts", "limit": limit})


def test_reserve_api_key_emits_api_key_added_and_counts():
    org = given(created())
    key_id = uuid4()

    org.reserve_api_key(key_id, ACTOR, REQUEST)

    assert then(org) == [("ApiKeyAdded", {"key_id": key_id, "actor": ACTOR, "request_id": REQUEST})]
    assert org.active_api_keys == 1


def test_reserve_api_key_beyond_the_plan_limit_is_refused():
    limit = PLAN_LIMITS[Plan.FREE].api_keys
    org = given(created())
    for _ in range(limit):
        org.reserve_api_key(uuid4(), ACTOR, REQUEST)
    org = given(created(), history(org))

    refused(org, lambda: org.reserve_api_key(uuid4(), ACTOR, REQUEST), kind=LimitExceeded,
            code="PLAN_LIMIT_EXCEEDED", details={"resource": "api_keys", "limit": limit})


def test_released_api_key_frees_a_slot():
    limit = PLAN_LIMITS[Plan.FREE].api_keys
    org = given(created())
    keys = [uuid4() for _ in range(limit)]
    for key in keys:
        org.reserve_api_key(key, ACTOR, REQUEST)
    org.release_api_key(keys[0], ACTOR, "r-release")
    org = given(created(), history(org))
    assert org.active_api_keys == limit - 1

    new_key = uuid4()
    org.reserve_api_key(new_key, ACTOR, REQUEST)

    assert then(org) == [("ApiKeyAdded", {"key_id": new_key, "actor": ACTOR, "request_id": REQUEST})]


def test_release_api_key_emits_api_key_released():
    org = given(created())
    key_id = uuid4()
    org.reserve_api_key(key_id, ACTOR, "r1")
    org = given(created(), history(org))

    org.release_api_key(key_id, ACTOR, REQUEST)

    assert then(org) == [("ApiKeyReleased", {"key_id": key_id, "actor": ACTOR, "request_id": REQUEST})]
    assert org.active_api_keys == 0


# -- require -------------------------------------------------------------------------------------


def test_require_hides_the_org_from_non_members():
    org = given(team())

    refused(org, lambda: org.require(STRANGER, Permission.PROMPTS_READ), kind=NotFound, code="ORG_NOT_FOUND")


def test_require_refuses_a_member_lacking_the_permission_with_details():
    org = given(team())

    refused(org, lambda: org.require(DEV, Permission.PROMPTS_PROMOTE), kind=Forbidden, code="PERMISSION_DENIED",
            details={"required": "prompts:promote", "role": "developer"})
    refused(org, lambda: org.require(ADMIN, Permission.ORG_MANAGE), kind=Forbidden, code="PERMISSION_DENIED",
            details={"required": "org:manage", "role": "admin"})


def test_require_returns_the_role_when_granted():
    org = given(team())

    assert org.require(DEV, Permission.PROMPTS_WRITE) is Role.DEVELOPER
    assert org.require(OWNER, Permission.ORG_MANAGE) is Role.OWNER
    assert org.require(ADMIN, Permission.MEMBERS_MANAGE) is Role.ADMIN


def test_require_follows_role_changes_and_removal():
    org = given(team())
    org.change_role(DEV, "viewer", Role.OWNER, ACTOR, "r1")
    org.remove_member(ADMIN, Role.OWNER, ACTOR, "r2")
    org = given(team(), history(org))

    refused(org, lambda: org.require(DEV, Permission.PROMPTS_WRITE), kind=Forbidden, code="PERMISSION_DENIED")
    refused(org, lambda: org.require(ADMIN, Permission.PROMPTS_READ), kind=NotFound, code="ORG_NOT_FOUND")


# -- replay --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_organisation_replay_equals_live_state(seed):
    rng = random.Random(seed)
    people = [uuid4() for _ in range(8)]
    roles = [r.value for r in Role]
    live = Organisation.create(ORG_ID, "Acme", OWNER, ACTOR, "r0", plan=rng.choice(["FREE", "PRO"]))
    events = history(live)
    for step in range(60):
        who, role, by = rng.choice(people + [OWNER]), rng.choice(roles), rng.choice([Role.OWNER, Role.ADMIN])
        action = rng.choice(["add", "change", "remove", "plan", "rename", "prompt", "key"])
        before = live.version
        try:
            if action == "add":
                live.add_member(who, role, by, ACTOR, f"r{step}")
            elif action == "change":
                live.change_role(who, role, by, ACTOR, f"r{step}")
            elif action == "remove":
                live.remove_member(who, by, ACTOR, f"r{step}")
            elif action == "plan":
                live.change_plan(rng.choice(["FREE", "PRO"]), ACTOR, f"r{step}")
            elif action == "rename":
                live.rename(rng.choice(["Acme", "Acme 2", "Beta"]), ACTOR, f"r{step}")
            elif action == "prompt":
                live.reserve_prompt(uuid4(), ACTOR, f"r{step}")
            else:
                live.reserve_api_key(uuid4(), ACTOR, f"r{step}")
        except DomainError:
            assert live.version == before
        events += history(live)
        assert live.owners(), "an organisation always keeps an owner"
        assert len(live.members) <= live.limits.members

    rebuilt = replay(events)

    assert rebuilt.version == live.version == len(events)
    assert (rebuilt.name, rebuilt.plan, rebuilt.members, rebuilt.prompt_count, rebuilt.active_api_keys) == (
        live.name, live.plan, live.members, live.prompt_count, live.active_api_keys)
