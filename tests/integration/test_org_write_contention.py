"""Commands on one organisation's stream queue instead of colliding (application.serialise).

Every prompt creation appends to the Organisation (the plan's prompt counter). Before the locks,
16 concurrent creations in one org collided in the event store and retried, up to 409
CONCURRENT_MODIFICATION; now they queue: no collision at all, in one process or across two
(Postgres advisory lock), and the plan limit stays exact."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from eventsourcing.persistence import IntegrityError

from application import Principal
from domain.errors import LimitExceeded
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
    assert app.grant(owner, org).org.prompt_count == THREADS * 5


def test_the_plan_limit_stays_exact_under_concurrency(container):
    app = container.app
    owner, org = _owner_and_org(app, plan="FREE")
    limit = app.grant(owner, org).org.limits.prompts
    errors = _create_many(app, owner, org, per_thread=limit // THREADS + 2, tag="f")
    created = app.grant(owner, org).org.prompt_count
    assert created == limit
    assert all(isinstance(e, LimitExceeded) and e.code == "PLAN_LIMIT_EXCEEDED" for e in errors), errors[:3]
    assert len(errors) == THREADS * (limit // THREADS + 2) - limit


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
        assert second.app.grant(owner, org).org.prompt_count == 2 * THREADS * 3
    finally:
        first.close()
        second.close()
