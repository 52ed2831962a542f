"""The prompt quota as its lock is granted (application.quota_reads, adr/0031), on both backends and
across two applications on one store (as two API processes): the quota a process saved last is
brought up to date with what the other saved since, the count and the plan stay exact, and on
Postgres the newer events come with the lock, read after its grant."""
from __future__ import annotations

import threading
import time
from uuid import uuid4

import pytest

from domain.base import acting
from domain.errors import LimitExceeded
from domain.quota import PromptQuota
from interfaces.command_locks import PostgresCommandLocks, events_after_statement
from interfaces.event_store import own_connection_args
from tests.integration.test_org_write_contention import _owner_and_org


def test_each_process_brings_its_kept_quota_up_to_date_with_the_others_counts(two_apps):
    first, second = two_apps
    owner, org = _owner_and_org(first)
    for i in range(6):  # alternating, as creations balanced over two API processes
        app = (first, second)[i % 2]
        app.create_prompt(owner, org, name=f"alternate-{i}", template="t", request_id=f"r{i}")
    assert first.repository.get(PromptQuota.id_for(org)).count == 6
    for app in (first, second):
        # one load each (its first creation), then fast-forwards: a kept quota that missed the other's
        # counts would have been refused at its stream version, retried and loaded again
        assert (app.quota_reads.loads, app.quota_reads.fast_forwards) == (1, 2)


def test_a_plan_changed_by_another_process_reaches_the_kept_quota(two_apps):
    first, second = two_apps
    owner, org = _owner_and_org(first)  # PRO
    second.create_prompt(owner, org, name="before", template="t", request_id="r")
    first.update_organisation(owner, org, "r", plan="FREE")
    second.create_prompt(owner, org, name="after", template="t", request_id="r")
    kept = second.quota_reads._kept[org]
    assert (kept.plan, kept.count) == ("FREE", 2)
    assert second.quota_reads.fast_forwards == 1


def test_the_limit_holds_with_a_kept_quota(container):
    app = container.app
    owner, org = _owner_and_org(app, plan="FREE")
    quota = app.quota_reads
    first = app.create_prompt(owner, org, name="first", template="t", request_id="r")
    assert first.version == 1 and quota.loads == 1
    kept = quota._kept[org]
    for i in range(kept.limit - 1):
        app.create_prompt(owner, org, name=f"fill-{i}", template="t", request_id="r")
    with pytest.raises(LimitExceeded):
        app.create_prompt(owner, org, name="one-too-many", template="t", request_id="r")
    assert quota.loads == 1 and app.repository.get(PromptQuota.id_for(org)).count == kept.limit


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_the_read_with_the_lock_sees_the_previous_holders_commit(container):
    """Pipelined behind the lock, the read takes its snapshot after the grant, even where the
    server's default isolation would take it at the transaction's first statement."""
    app = container.app
    with acting("user:test", "r"):
        quota = PromptQuota.open(uuid4(), "PRO")
    app.save(quota)
    conninfo, kwargs = own_connection_args(app.recorder)
    repeatable = {**kwargs, "options": (kwargs.get("options", "") + " -c default_transaction_isolation=repeatable\\ read").strip()}
    holder = PostgresCommandLocks(conninfo, repeatable, events_after=events_after_statement(app.recorder))
    waiter = PostgresCommandLocks(conninfo, repeatable, events_after=events_after_statement(app.recorder))
    key = f"prompt_quota:{uuid4()}"
    seen: list = []
    held, asked = threading.Event(), threading.Event()

    def wait_for_it() -> None:
        held.wait(5)
        asked.set()
        with waiter.hold(key, read_after=(quota.id, quota.version)) as newer:
            seen.extend(newer)

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    try:
        with holder.hold(key):
            held.set()
            asked.wait(5)
            time.sleep(0.3)  # the waiter's lock and read are on the server, waiting for the grant
            counted = app.repository.get(quota.id)
            with acting("user:test", "r"):
                counted.count_prompt(uuid4())
            app.save(counted)
        thread.join(5)
        assert [(e.originator_id, e.originator_version) for e in seen] == [(quota.id, quota.version + 1)]
    finally:
        holder.close()
        waiter.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_hold_with_a_read_is_the_lock_and_the_read_then_the_unlock(container, statements):
    app = container.app
    owner, org = _owner_and_org(app)
    app.create_prompt(owner, org, name="one", template="t", request_id="r")
    del statements[:]
    app.create_prompt(owner, org, name="two", template="t", request_id="r")
    locks = [s for s in statements if "pg_advisory" in s or "originator_version >" in s]
    assert locks[0] == "SELECT pg_advisory_lock(%s)" and "originator_version > %s" in locks[1]
    assert locks[2:] == ["SELECT pg_advisory_unlock(%s)"]
    assert app.quota_reads.fast_forwards == 1
