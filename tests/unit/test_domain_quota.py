"""PromptQuota: the plan's prompt counter of one organisation, on its own stream (adr/0025)."""
from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from domain.errors import Invalid, LimitExceeded
from domain.permissions import PLAN_LIMITS, Plan
from domain.quota import PromptQuota
from tests.unit.domain_helpers import ACTOR, REQUEST, by, given, history, refused, replay, then

ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
OTHER_ORG = UUID("00000000-0000-4000-8000-00000000000b")
FREE = PLAN_LIMITS[Plan.FREE].prompts


def opened(plan: str = "FREE", count: int = 0) -> list:
    with by(ACTOR, "req-open"):
        return history(PromptQuota.open(ORG_ID, plan, count))


def counted(n: int, plan: str = "FREE", start: int = 0) -> list:
    quota = given(opened(plan, start))
    with by(ACTOR, REQUEST):
        for _ in range(n):
            quota.count_prompt(uuid4())
    return opened(plan, start) + history(quota)


def test_open_emits_opened_with_the_org_plan_and_count():
    with by(ACTOR, REQUEST):
        quota = PromptQuota.open(ORG_ID, "PRO", 7)

    assert then(quota) == [("Opened", {"org_id": ORG_ID, "plan": "PRO", "count": 7, "actor": ACTOR,
                                       "request_id": REQUEST})]
    assert (quota.count, quota.limit) == (7, PLAN_LIMITS[Plan.PRO].prompts)


def test_its_id_is_derived_from_the_organisation_alone():
    assert PromptQuota.id_for(ORG_ID) == PromptQuota.id_for(ORG_ID) != PromptQuota.id_for(OTHER_ORG)
    with by(ACTOR, REQUEST):
        assert PromptQuota.open(ORG_ID, "FREE").id == PromptQuota.id_for(ORG_ID)


def test_an_unknown_plan_is_refused():
    with by(ACTOR, REQUEST), pytest.raises(Invalid) as exc:
        PromptQuota.open(ORG_ID, "ENTERPRISE")
    assert exc.value.code == "UNKNOWN_PLAN"


def test_count_prompt_emits_prompt_counted_with_the_org():
    quota = given(opened())
    prompt_id = uuid4()

    with by(ACTOR, REQUEST):
        quota.count_prompt(prompt_id)

    assert then(quota) == [("PromptCounted", {"org_id": ORG_ID, "prompt_id": prompt_id, "actor": ACTOR,
                                              "request_id": REQUEST})]
    assert quota.count == 1


def test_counting_up_to_the_limit_is_allowed_and_beyond_it_refused():
    quota = given(counted(FREE))
    assert quota.count == FREE

    refused(quota, lambda: quota.count_prompt(uuid4()), kind=LimitExceeded, code="PLAN_LIMIT_EXCEEDED",
            details={"resource": "prompts", "limit": FREE})


def test_a_count_carried_over_from_the_organisation_counts_against_the_limit():
    quota = given(counted(2, start=FREE - 2))

    refused(quota, lambda: quota.count_prompt(uuid4()), kind=LimitExceeded, code="PLAN_LIMIT_EXCEEDED")


def test_set_plan_moves_the_limit():
    quota = given(counted(FREE))

    with by(ACTOR, REQUEST):
        quota.set_plan("PRO")
        quota.count_prompt(uuid4())

    assert [name for name, _ in then(quota)] == ["PlanSet", "PromptCounted"]
    assert (quota.plan, quota.count) == ("PRO", FREE + 1)


def test_set_plan_to_the_current_plan_emits_nothing():
    quota = given(opened("PRO"))

    with by(ACTOR, REQUEST):
        quota.set_plan("PRO")

    assert then(quota) == []


def test_replaying_the_stream_rebuilds_the_same_state():
    quota = given(counted(3, plan="PRO", start=5))
    with by(ACTOR, REQUEST):
        quota.set_plan("FREE")
        quota.count_prompt(uuid4())
    events = counted(3, plan="PRO", start=5) + history(quota)

    rebuilt = replay(events)

    assert (rebuilt.org_id, rebuilt.plan, rebuilt.count, rebuilt.version) == (ORG_ID, "FREE", 9, len(events))
