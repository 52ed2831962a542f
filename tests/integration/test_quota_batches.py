"""Concurrent prompt creations in one organisation are counted and saved together
(application.quota_batches, adr/0025), on both backends: while the quota's lock is held elsewhere,
creations queue and the next writer saves them in one save; the plan's limit stays exact inside a
batch; each count carries its own request's metadata; a name claimed twice in one batch fails only
the second creation (409 PROMPT_NAME_TAKEN after its retry)."""
from __future__ import annotations

import threading
import time

import pytest

from domain.errors import Conflict, LimitExceeded
from domain.permissions import PLAN_LIMITS, Plan
from domain.quota import PromptQuota
from tests.integration.test_org_write_contention import _owner_and_org


def _queued_behind_the_lock(app, org, calls: dict[str, callable]) -> dict[str, object]:
    """Hold the quota's lock, start every call, wait until they all queued, release: results by name."""
    results: dict[str, object] = {}

    def run(name: str, call) -> None:
        try:
            results[name] = call()
        except Exception as exc:  # noqa: BLE001 - the test asserts on each outcome
            results[name] = exc

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in calls.items()]
    with app.quota_lock(org):
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = app.quota_batches._orgs.get(org)
            if state is not None and len(state.queue) == len(calls):
                break
            time.sleep(0.005)
        else:
            pytest.fail("the creations did not queue")
    for t in threads:
        t.join(30)
    return results


def test_creations_queued_while_the_lock_is_held_go_in_one_save(container):
    app = container.app
    owner, org = _owner_and_org(app)
    saves, creations = app.quota_batches.saves, app.quota_batches.creations
    results = _queued_behind_the_lock(app, org, {
        f"p{i}": (lambda i=i: app.create_prompt(owner, org, name=f"batched-{i}", template="t", request_id=f"req-{i}"))
        for i in range(8)})
    assert all(not isinstance(r, Exception) for r in results.values()), results
    assert (app.quota_batches.saves - saves, app.quota_batches.creations - creations) == (1, 8)
    assert len({r.position for r in results.values()}) == 1  # one save, one position for all
    quota = app.repository.get(PromptQuota.id_for(org))
    assert quota.count == 8
    counted = [e for e in app.events.get(PromptQuota.id_for(org)) if isinstance(e, PromptQuota.PromptCounted)]
    by_prompt = {e.prompt_id: (e.actor, e.request_id) for e in counted}
    for i, result in enumerate(results[f"p{i}"] for i in range(8)):
        assert by_prompt[result.id] == (owner.actor, f"req-{i}")  # each count stamped with its own request
        assert app.repository.get(result.id).name == f"batched-{i}"


def test_the_limit_is_exact_inside_a_batch(container):
    app = container.app
    owner, org = _owner_and_org(app, plan="FREE")
    limit = PLAN_LIMITS[Plan.FREE].prompts
    for i in range(limit - 2):
        app.create_prompt(owner, org, name=f"pre-{i}", template="t", request_id="pre")
    results = _queued_behind_the_lock(app, org, {
        f"p{i}": (lambda i=i: app.create_prompt(owner, org, name=f"last-{i}", template="t", request_id=f"r{i}"))
        for i in range(5)})
    refused = [r for r in results.values() if isinstance(r, LimitExceeded)]
    assert len(refused) == 3 and all(r.code == "PLAN_LIMIT_EXCEEDED" for r in refused)
    assert len([r for r in results.values() if not isinstance(r, Exception)]) == 2
    assert app.prompts_used(app.grant(owner, org).org) == limit


def test_a_name_claimed_twice_in_one_batch_fails_only_the_second_creation(container):
    app = container.app
    owner, org = _owner_and_org(app)
    calls = {f"other-{i}": (lambda i=i: app.create_prompt(owner, org, name=f"other-{i}", template="t", request_id="r"))
             for i in range(3)}
    calls |= {f"same-{i}": (lambda: app.create_prompt(owner, org, name="same", template="t", request_id="r"))
              for i in range(2)}
    results = _queued_behind_the_lock(app, org, calls)
    same = [results["same-0"], results["same-1"]]
    assert sorted(type(r).__name__ for r in same) == ["CommandResult", "Conflict"], same
    assert next(r for r in same if isinstance(r, Conflict)).code == "PROMPT_NAME_TAKEN"
    assert all(not isinstance(results[f"other-{i}"], Exception) for i in range(3))
    assert app.prompts_used(app.grant(owner, org).org) == 4
