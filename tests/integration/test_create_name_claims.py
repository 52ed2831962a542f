"""A creation's name is claimed by its save (application.prompts.create_prompt, adr/0031), on both
backends and across two applications on one store (as two API processes): a first attempt without
includes reads no claim, a taken name is still 409 PROMPT_NAME_TAKEN in the order the errors always
came (name before includes, name before the plan's limit), and a concurrent twin with the same
Idempotency-Key is still answered with the replay."""
from __future__ import annotations

import dataclasses

import pytest

from domain.errors import Conflict
from domain.ids import prompt_name_index_id
from domain.permissions import PLAN_LIMITS, Plan
from tests.integration.test_org_write_contention import _owner_and_org
from tests.integration.test_quota_batches import _queued_behind_the_lock


@pytest.fixture
def claim_reads(monkeypatch):
    """The claims each application read (`BaseApp._exists` of a PromptNameIndex), by application."""
    def watch(app) -> list:
        seen: list = []
        exists = app._exists

        def recorded(aggregate_id):
            seen.append(aggregate_id)
            return exists(aggregate_id)

        monkeypatch.setattr(app, "_exists", recorded)
        return seen

    return watch


def test_a_first_attempt_without_includes_reads_no_claim(container, claim_reads):
    app = container.app
    owner, org = _owner_and_org(app)
    reads = claim_reads(app)
    app.create_prompt(owner, org, name="fresh", template="Hi {{who}}", request_id="r")
    assert reads == []
    app.create_prompt(owner, org, name="composed", template="{{> fresh#1}}", request_id="r")
    assert reads == [prompt_name_index_id(org, "composed")]  # with includes: the name before the includes


def test_a_name_taken_in_another_process_is_refused_after_the_save_and_then_at_once(two_apps, claim_reads):
    first, second = two_apps
    owner, org = _owner_and_org(first)
    first.create_prompt(owner, org, name="greet", template="Hi", request_id="r")
    reads = claim_reads(second)
    saves = second.quota_batches.saves
    with pytest.raises(Conflict) as exc:
        second.create_prompt(owner, org, name="GREET", template="Hello", request_id="r")
    assert exc.value.code == "PROMPT_NAME_TAKEN" and exc.value.details == {"name": "GREET"}
    assert reads == [prompt_name_index_id(org, "greet")]  # read on the retry, after the refused save
    with pytest.raises(Conflict):
        second.create_prompt(owner, org, name="greet", template="Hello", request_id="r")
    assert len(reads) == 1 and second.quota_batches.saves == saves  # remembered: no read, no save
    assert first.repository.get(first.prompt_id_by_name(owner, org, "greet")).versions[-1]["template"] == "Hi"


def test_a_taken_name_comes_before_the_includes_and_the_limit(two_apps, monkeypatch):
    first, second = two_apps
    owner, org = _owner_and_org(first, plan="FREE")
    monkeypatch.setitem(PLAN_LIMITS, Plan.FREE, dataclasses.replace(PLAN_LIMITS[Plan.FREE], prompts=2))
    first.create_prompt(owner, org, name="tone", template="Be kind.", request_id="r")
    with pytest.raises(Conflict) as exc:  # not INCLUDE_NOT_FOUND
        second.create_prompt(owner, org, name="tone", template="{{> missing}}", request_id="r")
    assert exc.value.code == "PROMPT_NAME_TAKEN"
    first.create_prompt(owner, org, name="other", template="o", request_id="r")  # the plan is full
    second.names_taken.clear()
    with pytest.raises(Conflict) as exc:  # not PLAN_LIMIT_EXCEEDED
        second.create_prompt(owner, org, name="Tone", template="Be kind.", request_id="r")
    assert exc.value.code == "PROMPT_NAME_TAKEN"


def test_concurrent_twins_with_one_idempotency_key_get_one_prompt_and_its_replay(container):
    app = container.app
    owner, org = _owner_and_org(app)
    results = _queued_behind_the_lock(app, org, {
        twin: (lambda: app.create_prompt(owner, org, name="twin", template="t", request_id="r", idempotency_key="k"))
        for twin in ("a", "b")})
    assert all(not isinstance(r, Exception) for r in results.values()), results
    assert results["a"].id == results["b"].id
    assert sorted(bool(r.replayed) for r in results.values()) == [False, True]
