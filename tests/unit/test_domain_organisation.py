"""Organisation (the tenant): members, roles, plan and usage counters (authorisation: test_policy.py)."""
from __future__ import annotations

import random
from uuid import UUID, uuid4

import pytest

from domain.errors import Conflict, DomainError, Forbidden, Invalid, LimitExceeded, NotFound
from domain.organisation import Organisation
from domain.permissions import PLAN_LIMITS, Plan, Role
from tests.unit.domain_helpers import ACTOR, REQUEST, by, given, history, refused, replay, then

ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
OWNER = UUID("00000000-0000-4000-8000-000000000001")
ADMIN = UUID("00000000-0000-4000-8000-000000000002")
DEV = UUID("00000000-0000-4000-8000-000000000003")
OWNER2 = UUID("00000000-0000-4000-8000-000000000004")
STRANGER = UUID("00000000-0000-4000-8000-0000000000ff")


def created(plan: str = "FREE") -> list:
    with by(f"user:{OWNER}", "req-create"):
        return history(Organisation.create(ORG_ID, "Acme", OWNER, plan=plan))


def with_members(*members: tuple[UUID, str], plan: str = "FREE") -> list:
    """Events of an org created by OWNER and then given `members` (added by the owner)."""
    org = given(created(plan))
    for user_id, role in members:
        with by(f"user:{OWNER}", f"req-add-{user_id}"):
            org.add_member(user_id, role, Role.OWNER)
    return created(plan) + history(org)


def team() -> list:
    return with_members((ADMIN, "admin"), (DEV, "developer"))


# -- create --------------------------------------------------------------------------------------


def test_create_emits_created_and_owner_is_the_only_member():
    with by(ACTOR, REQUEST):
        org = Organisation.create(ORG_ID, "  Acme Corp ", OWNER, request_hash="fp")

    assert then(org) == [("Created", {
        "name": "Acme Corp", "plan": "FREE", "owner_id": OWNER, "actor": ACTOR, "request_id": REQUEST,
        "request_hash": "fp", "protected_labels": ["production"], "review_policies": {},
    })]
    assert org.protected_labels == ["production"] and org.review_policy("production") == {
        "approvals": 1, "approver_roles": ["admin", "owner", "reviewer"]}
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
    refused(None, lambda: Organisation.create(ORG_ID, "Acme", OWNER, plan="GOLD"),
            kind=Invalid, code="UNKNOWN_PLAN", details={"allowed": ["FREE", "PRO"]})


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "Acme\x07", "Acme\u200b", "Acme/Corp", "Acme\tCorp",
                                  "Acme\nCorp", "Acme\rCorp"],
                         ids=["empty", "blank", "too-long", "control-char", "format-char", "slash", "tab", "newline",
                              "carriage-return"])
def test_create_with_bad_name_is_refused(name):
    refused(None, lambda: Organisation.create(ORG_ID, name, OWNER), kind=Invalid, code="INVALID_NAME")


def test_create_accepts_a_name_of_exactly_the_maximum_length():
    with by(ACTOR, REQUEST):
        org = Organisation.create(ORG_ID, "x" * 200, OWNER)

    assert given(history(org)).name == "x" * 200


# -- rename --------------------------------------------------------------------------------------


def test_rename_emits_renamed():
    org = given(created())

    with by(ACTOR, REQUEST):
        org.rename(" Acme Inc ")

    assert then(org) == [("Renamed", {"name": "Acme Inc", "actor": ACTOR, "request_id": REQUEST})]
    assert org.name == "Acme Inc"


def test_rename_to_the_same_name_emits_nothing():
    org = given(created())

    with by(ACTOR, REQUEST):
        org.rename("  Acme ")

    assert then(org) == []


def test_rename_to_an_invalid_name_is_refused():
    org = given(created())

    refused(org, lambda: org.rename("a/b"), kind=Invalid, code="INVALID_NAME")
    assert org.name == "Acme"


# -- add_member ----------------------------------------------------------------------------------


def test_add_member_emits_member_added():
    org = given(created())

    with by(ACTOR, REQUEST):
        org.add_member(DEV, "developer", Role.OWNER)

    assert then(org) == [("MemberAdded", {"user_id": DEV, "role": "developer", "actor": ACTOR, "request_id": REQUEST,
                                          "idempotency": "", "request_hash": ""})]
    assert org.role_of(DEV) is Role.DEVELOPER


def test_admin_may_add_non_owner_members():
    org = given(team())

    with by(f"user:{ADMIN}", REQUEST):
        org.add_member(OWNER2, "reviewer", Role.ADMIN)

    assert then(org) == [("MemberAdded", {"user_id": OWNER2, "role": "reviewer", "actor": f"user:{ADMIN}",
                                          "request_id": REQUEST, "idempotency": "", "request_hash": ""})]


def test_owner_may_grant_owner():
    org = given(created())

    with by(ACTOR, REQUEST):
        org.add_member(OWNER2, "owner", Role.OWNER)

    assert then(org)[0][1]["role"] == "owner"
    assert sorted(org.owners()) == sorted([str(OWNER), str(OWNER2)])


def test_add_member_with_unknown_role_is_refused():
    org = given(created())

    error = refused(org, lambda: org.add_member(DEV, "superuser", Role.OWNER),
                    kind=Invalid, code="UNKNOWN_ROLE")
    assert error.details["role"] == "superuser"
    assert error.details["allowed"] == ["owner", "admin", "developer", "reviewer", "viewer"]


def test_add_existing_member_is_refused():
    org = given(team())

    refused(org, lambda: org.add_member(DEV, "viewer", Role.OWNER), kind=Conflict,
            code="MEMBER_EXISTS", details={"user_id": str(DEV)})
    assert org.role_of(DEV) is Role.DEVELOPER


def test_admin_granting_owner_is_refused():
    org = given(team())

    refused(org, lambda: org.add_member(OWNER2, "owner", Role.ADMIN), kind=Forbidden,
            code="OWNER_ROLE_REQUIRED")
    assert org.role_of(OWNER2) is None


def test_add_member_beyond_the_plan_limit_is_refused_with_details():
    limit = PLAN_LIMITS[Plan.FREE].members
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(limit - 1)]))
    assert len(org.members) == limit

    error = refused(org, lambda: org.add_member(STRANGER, "viewer", Role.OWNER),
                    kind=LimitExceeded, code="PLAN_LIMIT_EXCEEDED", details={"resource": "members", "limit": limit})
    assert isinstance(error, DomainError)


def test_add_member_up_to_the_plan_limit_is_allowed():
    limit = PLAN_LIMITS[Plan.FREE].members
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(limit - 2)]))

    with by(ACTOR, REQUEST):
        org.add_member(STRANGER, "viewer", Role.OWNER)

    assert [name for name, _ in then(org)] == ["MemberAdded"]
    assert len(org.members) == limit


def test_pro_plan_allows_more_members_than_free():
    free_limit = PLAN_LIMITS[Plan.FREE].members
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(free_limit - 1)], plan="PRO"))

    with by(ACTOR, REQUEST):
        org.add_member(STRANGER, "viewer", Role.OWNER)

    assert len(then(org)) == 1


# -- change_role ---------------------------------------------------------------------------------


def test_change_role_emits_old_and_new_role():
    org = given(team())

    with by(f"user:{ADMIN}", REQUEST):
        org.change_role(DEV, "reviewer", Role.ADMIN)

    assert then(org) == [("MemberRoleChanged", {
        "user_id": DEV, "old_role": "developer", "new_role": "reviewer", "actor": f"user:{ADMIN}",
        "request_id": REQUEST,
    })]
    assert org.role_of(DEV) is Role.REVIEWER


def test_change_role_to_the_same_role_emits_nothing():
    org = given(team())

    with by(ACTOR, REQUEST):
        org.change_role(DEV, "developer", Role.OWNER)

    assert then(org) == []


def test_demoting_the_last_owner_is_refused():
    org = given(team())

    refused(org, lambda: org.change_role(OWNER, "admin", Role.OWNER), kind=Conflict, code="LAST_OWNER")
    assert org.role_of(OWNER) is Role.OWNER


def test_demoting_one_of_two_owners_is_allowed():
    org = given(with_members((OWNER2, "owner")))

    with by(f"user:{OWNER2}", REQUEST):
        org.change_role(OWNER, "admin", Role.OWNER)

    assert then(org) == [("MemberRoleChanged", {
        "user_id": OWNER, "old_role": "owner", "new_role": "admin", "actor": f"user:{OWNER2}", "request_id": REQUEST,
    })]
    assert org.owners() == [str(OWNER2)]


def test_admin_changing_an_owner_is_refused():
    org = given(with_members((ADMIN, "admin"), (OWNER2, "owner")))

    refused(org, lambda: org.change_role(OWNER2, "viewer", Role.ADMIN), kind=Forbidden,
            code="OWNER_ROLE_REQUIRED")
    assert org.role_of(OWNER2) is Role.OWNER


def test_admin_promoting_to_owner_is_refused():
    org = given(team())

    refused(org, lambda: org.change_role(DEV, "owner", Role.ADMIN), kind=Forbidden,
            code="OWNER_ROLE_REQUIRED")


def test_owner_promoting_to_owner_is_allowed():
    org = given(team())

    with by(ACTOR, REQUEST):
        org.change_role(ADMIN, "owner", Role.OWNER)

    assert then(org) == [("MemberRoleChanged", {
        "user_id": ADMIN, "old_role": "admin", "new_role": "owner", "actor": ACTOR, "request_id": REQUEST,
    })]
    assert org.role_of(ADMIN) is Role.OWNER


def test_change_role_of_unknown_member_is_refused():
    org = given(team())

    refused(org, lambda: org.change_role(STRANGER, "viewer", Role.OWNER), kind=NotFound,
            code="MEMBER_NOT_FOUND")


def test_change_role_to_unknown_role_is_refused():
    org = given(team())

    refused(org, lambda: org.change_role(DEV, "god", Role.OWNER), kind=Invalid, code="UNKNOWN_ROLE")


# -- remove_member -------------------------------------------------------------------------------


def test_remove_member_emits_member_removed_with_role():
    org = given(team())

    with by(f"user:{ADMIN}", REQUEST):
        org.remove_member(DEV, Role.ADMIN)

    assert then(org) == [("MemberRemoved", {"user_id": DEV, "role": "developer", "actor": f"user:{ADMIN}",
                                            "request_id": REQUEST})]
    assert org.role_of(DEV) is None


def test_removing_the_last_owner_is_refused():
    org = given(team())

    refused(org, lambda: org.remove_member(OWNER, Role.OWNER), kind=Conflict, code="LAST_OWNER")
    assert org.role_of(OWNER) is Role.OWNER


def test_owner_may_remove_a_second_owner():
    org = given(with_members((OWNER2, "owner")))

    with by(ACTOR, REQUEST):
        org.remove_member(OWNER2, Role.OWNER)

    assert then(org) == [("MemberRemoved", {"user_id": OWNER2, "role": "owner", "actor": ACTOR, "request_id": REQUEST})]
    assert org.owners() == [str(OWNER)]


def test_admin_removing_an_owner_is_refused():
    org = given(with_members((ADMIN, "admin"), (OWNER2, "owner")))

    refused(org, lambda: org.remove_member(OWNER2, Role.ADMIN), kind=Forbidden,
            code="OWNER_ROLE_REQUIRED")


def test_remove_unknown_member_is_refused():
    org = given(team())

    refused(org, lambda: org.remove_member(STRANGER, Role.OWNER), kind=NotFound,
            code="MEMBER_NOT_FOUND")


def test_removed_member_can_be_added_again():
    org = given(team())
    with by(ACTOR, "r1"):
        org.remove_member(DEV, Role.OWNER)
    replayed = given(team(), history(org))

    with by(ACTOR, "r2"):
        replayed.add_member(DEV, "viewer", Role.OWNER)

    assert then(replayed)[0][0] == "MemberAdded"
    assert replayed.role_of(DEV) is Role.VIEWER


# -- plan ----------------------------------------------------------------------------------------


def test_change_plan_free_to_pro_emits_plan_changed():
    org = given(created())

    with by(ACTOR, REQUEST):
        org.change_plan("PRO", prompts=0)

    assert then(org) == [("PlanChanged", {"plan": "PRO", "actor": ACTOR, "request_id": REQUEST})]
    assert org.limits == PLAN_LIMITS[Plan.PRO]


def test_change_plan_to_the_current_plan_emits_nothing():
    org = given(created())

    with by(ACTOR, REQUEST):
        org.change_plan("FREE", prompts=0)

    assert then(org) == []


def test_change_plan_to_unknown_plan_is_refused():
    org = given(created())

    refused(org, lambda: org.change_plan("ENTERPRISE", prompts=0), kind=Invalid, code="UNKNOWN_PLAN")


def test_downgrade_within_the_smaller_limits_is_allowed():
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(PLAN_LIMITS[Plan.FREE].members - 1)], plan="PRO"))

    with by(ACTOR, REQUEST):
        org.change_plan("FREE", prompts=0)

    assert then(org) == [("PlanChanged", {"plan": "FREE", "actor": ACTOR, "request_id": REQUEST})]


def test_downgrade_blocked_by_member_usage():
    members = PLAN_LIMITS[Plan.FREE].members + 1
    org = given(with_members(*[(uuid4(), "viewer") for _ in range(members - 1)], plan="PRO"))

    refused(org, lambda: org.change_plan("FREE", prompts=0), kind=LimitExceeded, code="PLAN_DOWNGRADE_BLOCKED",
            details={"members": members, "prompts": 0, "api_keys": 0})
    assert org.plan == "PRO"


def test_downgrade_blocked_by_api_key_usage():
    keys = PLAN_LIMITS[Plan.FREE].api_keys + 1
    org = given(created("PRO"))
    with by(ACTOR, REQUEST):
        for _ in range(keys):
            org.reserve_api_key(uuid4())
    org = given(created("PRO"), history(org))

    refused(org, lambda: org.change_plan("FREE", prompts=0), kind=LimitExceeded, code="PLAN_DOWNGRADE_BLOCKED",
            details={"members": 1, "prompts": 0, "api_keys": keys})


def test_downgrade_blocked_by_prompt_usage():
    """The prompt count comes from the organisation's PromptQuota (adr/0025)."""
    prompts = PLAN_LIMITS[Plan.FREE].prompts + 1
    org = given(created("PRO"))

    refused(org, lambda: org.change_plan("FREE", prompts=prompts), kind=LimitExceeded, code="PLAN_DOWNGRADE_BLOCKED",
            details={"members": 1, "prompts": prompts, "api_keys": 0})


def test_downgrade_to_exactly_the_prompt_limit_is_allowed():
    org = given(created("PRO"))

    with by(ACTOR, REQUEST):
        org.change_plan("FREE", prompts=PLAN_LIMITS[Plan.FREE].prompts)

    assert then(org) == [("PlanChanged", {"plan": "FREE", "actor": ACTOR, "request_id": REQUEST})]


# -- usage counters ------------------------------------------------------------------------------


def test_prompts_counted_on_the_organisation_before_adr_0025_still_load():
    """Logs written before the prompt quota moved to its own stream hold PromptAdded events: they
    still count, and the quota is opened from that count (application tests)."""
    org = given(created())
    with by(ACTOR, REQUEST):
        org.trigger_event(Organisation.PromptAdded, prompt_id=uuid4())
        org.trigger_event(Organisation.PromptAdded, prompt_id=uuid4())

    assert replay(created() + history(org)).prompt_count == 2


def test_reserve_api_key_emits_api_key_added_and_counts():
    org = given(created())
    key_id = uuid4()

    with by(ACTOR, REQUEST):
        org.reserve_api_key(key_id)

    assert then(org) == [("ApiKeyAdded", {"key_id": key_id, "actor": ACTOR, "request_id": REQUEST})]
    assert org.active_api_keys == 1


def test_reserve_api_key_beyond_the_plan_limit_is_refused():
    limit = PLAN_LIMITS[Plan.FREE].api_keys
    org = given(created())
    with by(ACTOR, REQUEST):
        for _ in range(limit):
            org.reserve_api_key(uuid4())
    org = given(created(), history(org))

    refused(org, lambda: org.reserve_api_key(uuid4()), kind=LimitExceeded,
            code="PLAN_LIMIT_EXCEEDED", details={"resource": "api_keys", "limit": limit})


def test_released_api_key_frees_a_slot():
    limit = PLAN_LIMITS[Plan.FREE].api_keys
    org = given(created())
    keys = [uuid4() for _ in range(limit)]
    with by(ACTOR, REQUEST):
        for key in keys:
            org.reserve_api_key(key)
    with by(ACTOR, "r-release"):
        org.release_api_key(keys[0])
    org = given(created(), history(org))
    assert org.active_api_keys == limit - 1

    new_key = uuid4()
    with by(ACTOR, REQUEST):
        org.reserve_api_key(new_key)

    assert then(org) == [("ApiKeyAdded", {"key_id": new_key, "actor": ACTOR, "request_id": REQUEST})]


def test_release_api_key_emits_api_key_released():
    org = given(created())
    key_id = uuid4()
    with by(ACTOR, "r1"):
        org.reserve_api_key(key_id)
    org = given(created(), history(org))

    with by(ACTOR, REQUEST):
        org.release_api_key(key_id)

    assert then(org) == [("ApiKeyReleased", {"key_id": key_id, "actor": ACTOR, "request_id": REQUEST})]
    assert org.active_api_keys == 0


# -- replay --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_organisation_replay_equals_live_state(seed):
    rng = random.Random(seed)
    people = [uuid4() for _ in range(8)]
    roles = [r.value for r in Role]
    with by(ACTOR, "r0"):
        live = Organisation.create(ORG_ID, "Acme", OWNER, plan=rng.choice(["FREE", "PRO"]))
    events = history(live)
    for step in range(60):
        who, role, by_role = rng.choice(people + [OWNER]), rng.choice(roles), rng.choice([Role.OWNER, Role.ADMIN])
        action = rng.choice(["add", "change", "remove", "plan", "rename", "prompt", "key"])
        before = live.version
        try:
            with by(ACTOR, f"r{step}"):
                if action == "add":
                    live.add_member(who, role, by_role)
                elif action == "change":
                    live.change_role(who, role, by_role)
                elif action == "remove":
                    live.remove_member(who, by_role)
                elif action == "plan":
                    live.change_plan(rng.choice(["FREE", "PRO"]), prompts=live.prompt_count)
                elif action == "rename":
                    live.rename(rng.choice(["Acme", "Acme 2", "Beta"]))
                elif action == "prompt":  # a log written before adr/0025 counted prompts here
                    live.trigger_event(Organisation.PromptAdded, prompt_id=uuid4())
                else:
                    live.reserve_api_key(uuid4())
        except DomainError:
            assert live.version == before
        events += history(live)
        assert live.owners(), "an organisation always keeps an owner"
        assert len(live.members) <= live.limits.members

    rebuilt = replay(events)

    assert rebuilt.version == live.version == len(events)
    assert (rebuilt.name, rebuilt.plan, rebuilt.members, rebuilt.prompt_count, rebuilt.active_api_keys) == (
        live.name, live.plan, live.members, live.prompt_count, live.active_api_keys)
