"""Prompt creations in one organisation queue instead of colliding (application.serialise).

Every prompt creation counts on the organisation's prompt quota (domain.quota, adr/0025; on the
Organisation itself before). Before the locks, 16 concurrent creations in one org collided in the
event store and retried, up to 409 CONCURRENT_MODIFICATION; now they queue on the quota's lock: no
collision at all, in one process or across two (Postgres advisory lock), and the plan limit stays
exact, also against a plan change racing them. The Organisation is not written by creations."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError

from application import Principal
from domain.base import acting
from domain.errors import LimitExceeded
from domain.organisation import Organisation
from domain.permissions import PLAN_LIMITS, Plan
from domain.quota import PromptQuota
from interfaces.bootstrap import build

THREADS = 16


def _owner_and_org(app, plan: str = "PRO"):
    user_id, _ = app.register_user("contention@example.com", "correct horse battery", "C", "r")
    owner = Principal.user(user_id)
    org = app.create_organisation(owner, "Contention", "r").id
    if plan != "FREE":
        app.update_organisation(owner, org, "plan", plan=plan)
    return owner, org


def _count_collisions(app) -> list[int]:
    """Counts the event store's optimistic-concurrency refusals on this application's saves."""
    collisions = [0]
    save = app.save

    def counting_save(*aggregates, **kwargs):
        try:
            return save(*aggregates, **kwargs)
        except IntegrityError:
            collisions[0] += 1
            raise

    app.save = counting_save
    return collisions


def _create_many(app, owner, org, per_thread: int, tag: str) -> list[BaseException]:
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            try:
                app.create_prompt(owner, org, name=f"{tag}-{t}-{i}", template="t {{x}}", request_id=f"{tag}{t}{i}")
            except BaseException as exc:  # noqa: BLE001 - the test asserts on every failure
                with lock:
                    errors.append(exc)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(work, range(THREADS)))
    return errors


def test_concurrent_creations_in_one_org_queue_without_collisions(container):
    app = container.app
    owner, org = _owner_and_org(app)
    collisions = _count_collisions(app)
    errors = _create_many(app, owner, org, per_thread=5, tag="p")
    assert errors == []
    assert collisions[0] == 0
    assert app.prompts_used(app.grant(owner, org).org) == THREADS * 5


def test_the_plan_limit_stays_exact_under_concurrency(container):
    app = container.app
    owner, org = _owner_and_org(app, plan="FREE")
    limit = app.grant(owner, org).org.limits.prompts
    errors = _create_many(app, owner, org, per_thread=limit // THREADS + 2, tag="f")
    created = app.prompts_used(app.grant(owner, org).org)
    assert created == limit
    assert all(isinstance(e, LimitExceeded) and e.code == "PLAN_LIMIT_EXCEEDED" for e in errors), errors[:3]
    assert len(errors) == THREADS * (limit // THREADS + 2) - limit


def test_creating_prompts_does_not_write_the_organisation(container):
    """The counter lives on the quota's stream: membership, roles and keys (and the caches that
    authorise requests from the Organisation) are untouched by creations."""
    app = container.app
    owner, org = _owner_and_org(app)
    before = app.repository.get(org).version
    _create_many(app, owner, org, per_thread=2, tag="o")
    assert app.repository.get(org).version == before
    quota = app.repository.get(PromptQuota.id_for(org))
    assert (quota.count, quota.plan) == (THREADS * 2, "PRO")
    assert len(app.recorder.select_events(PromptQuota.id_for(org))) == 1 + 1 + THREADS * 2  # opened, plan, counts


def test_a_plan_downgrade_racing_creations_never_passes_the_new_limit(container):
    """A downgrade and creations race: whichever order they land in, the FREE limit holds."""
    app = container.app
    owner, org = _owner_and_org(app, plan="PRO")
    limit = PLAN_LIMITS[Plan.FREE].prompts
    for i in range(limit - 4):
        app.create_prompt(owner, org, name=f"pre-{i}", template="t", request_id=f"pre{i}")
    barrier = threading.Barrier(THREADS + 1)
    outcomes: list[object] = []

    def create(t: int) -> None:
        barrier.wait()
        try:
            outcomes.append(app.create_prompt(owner, org, name=f"race-{t}", template="t", request_id=f"race{t}"))
        except LimitExceeded as exc:
            outcomes.append(exc.code)

    def downgrade() -> None:
        barrier.wait()
        try:
            app.update_organisation(owner, org, "down", plan="FREE")
            outcomes.append("downgraded")
        except LimitExceeded as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=create, args=(t,)) for t in range(THREADS)] + [threading.Thread(target=downgrade)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    used = app.prompts_used(app.grant(owner, org).org)
    plan = app.grant(owner, org).org.plan
    assert used == limit - 4 + sum(1 for o in outcomes if not isinstance(o, str))
    if plan == "FREE":
        assert "downgraded" in outcomes and used <= limit
    else:
        assert "PLAN_DOWNGRADE_BLOCKED" in outcomes and used > limit
    assert app.repository.get(PromptQuota.id_for(org)).plan == plan


def test_an_organisation_that_counted_prompts_on_its_own_stream_keeps_its_count(container):
    """Logs written before adr/0025 counted prompts on the Organisation and have no quota: it is
    opened from that count on first use, and the plan's limit counts those prompts."""
    app = container.app
    user_id, _ = app.register_user("legacy@example.com", "correct horse battery", "L", "r")
    owner = Principal.user(user_id)
    limit = PLAN_LIMITS[Plan.FREE].prompts
    with acting(owner.actor, "legacy"):
        legacy = Organisation.create(uuid4(), "Legacy", user_id)
        for _ in range(limit - 1):
            legacy.trigger_event(Organisation.PromptAdded, prompt_id=uuid4())
    app.save(legacy)
    org = legacy.id
    assert app.prompts_used(app.grant(owner, org).org) == limit - 1
    app.create_prompt(owner, org, name="last", template="t", request_id="r1")
    with pytest.raises(LimitExceeded) as exc:
        app.create_prompt(owner, org, name="one-too-many", template="t", request_id="r2")
    assert exc.value.code == "PLAN_LIMIT_EXCEEDED"
    quota = app.repository.get(PromptQuota.id_for(org))
    assert (quota.count, quota.version) == (limit, 2)  # opened from the old count, then one more
    container.supervisor.catch_up()  # the read model counts the old events and the new one alike
    assert container.memberships.organisation(str(org))["prompt_count"] == limit


def test_the_read_model_counts_the_quota(container):
    app = container.app
    owner, org = _owner_and_org(app)
    _create_many(app, owner, org, per_thread=1, tag="rm")
    container.supervisor.catch_up()
    row = container.memberships.organisation(str(org))
    assert (row["prompt_count"], row["plan"]) == (THREADS, "PRO")


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_two_processes_queue_on_the_same_org(make_settings):
    """Two applications with their own pools and locks (as two API processes) on one database."""
    first, second = build(make_settings()), build(make_settings())
    try:
        owner, org = _owner_and_org(first.app)
        counts = [_count_collisions(first.app), _count_collisions(second.app)]
        results: list[list[BaseException]] = []
        threads = [threading.Thread(target=lambda c=c, tag=tag: results.append(_create_many(c.app, owner, org, 3, tag)))
                   for c, tag in ((first, "a"), (second, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [[], []]
        assert counts[0][0] + counts[1][0] == 0
        assert second.app.prompts_used(second.app.grant(owner, org).org) == 2 * THREADS * 3
    finally:
        first.close()
        second.close()
