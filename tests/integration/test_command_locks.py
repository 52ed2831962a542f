"""The commands' cross-process lock on Postgres (interfaces.command_locks, adr/0030): advisory locks
on connections of their own, two round trips a hold, surviving a server that closed the connection."""
from __future__ import annotations

import threading
import time
from uuid import uuid4

import psycopg
import pytest
from sqlalchemy import create_engine

from interfaces.command_locks import PostgresCommandLocks
from projections.liveness import has_pending_input
from projections.writer_lock import WriterLock
from tests.conftest import postgres_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def locks():
    made: list[PostgresCommandLocks] = []

    def make() -> PostgresCommandLocks:
        made.append(PostgresCommandLocks(postgres_url(), {}))
        return made[-1]

    yield make
    for each in made:
        each.close()


def _backend_pids(locks: PostgresCommandLocks) -> list[int]:
    return [conn.info.backend_pid for conn in locks._idle]


def test_two_processes_exclude_each_other(locks):
    """Two lock sets (as two API processes): the second holder waits until the first lets go."""
    first, second = locks(), locks()
    key = f"prompt_quota:{uuid4()}"
    order: list[str] = []
    held = threading.Event()

    def other() -> None:
        held.wait(5)
        with second.hold(key):
            order.append("second holds")

    thread = threading.Thread(target=other)
    thread.start()
    with first.hold(key):
        held.set()
        time.sleep(0.3)  # the other is waiting on the server meanwhile
        order.append("first lets go")
    thread.join(5)
    assert order == ["first lets go", "second holds"]


def test_a_hold_is_two_statements_on_a_kept_connection(locks, statements):
    first = locks()
    key = f"k:{uuid4()}"
    with first.hold(key):
        pass
    pid = _backend_pids(first)
    del statements[:]
    with first.hold(key):
        pass
    assert statements == ["SELECT pg_advisory_lock(%s)", "SELECT pg_advisory_unlock(%s)"]
    assert _backend_pids(first) == pid  # the same connection, kept for the next holder


def test_the_same_keys_as_the_previous_release(locks):
    """A process of the previous release took `WriterLock(engine, "command:" + key)` on a
    read-model connection: both releases must exclude each other during a rolling deploy."""
    first = locks()
    key = f"prompt_quota:{uuid4()}"
    engine = create_engine(postgres_url().replace("postgresql://", "postgresql+psycopg://", 1), poolclass=None)
    try:
        with first.hold(key):
            with WriterLock(engine, f"command:{key}").hold() as held:
                assert held is False
        with WriterLock(engine, f"command:{key}").hold() as held:
            assert held is True
    finally:
        engine.dispose()


def test_a_connection_closed_by_the_server_is_replaced_without_an_error(locks):
    first = locks()
    key = f"k:{uuid4()}"
    with first.hold(key):
        pass
    (pid,) = _backend_pids(first)
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    deadline = time.monotonic() + 5
    while not has_pending_input(first._idle[0]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert has_pending_input(first._idle[0])  # noticed without a round trip
    with first.hold(key):
        pass
    assert _backend_pids(first) != [pid]


def test_a_failing_block_still_lets_go(locks):
    first, second = locks(), locks()
    key = f"k:{uuid4()}"
    with pytest.raises(RuntimeError):
        with first.hold(key):
            raise RuntimeError("the command failed")
    engine = create_engine(postgres_url().replace("postgresql://", "postgresql+psycopg://", 1), poolclass=None)
    try:
        with WriterLock(engine, f"command:{key}").hold() as held:
            assert held is True
    finally:
        engine.dispose()
    with second.hold(key):
        pass


def test_an_idle_healthy_connection_has_nothing_to_read(locks):
    first = locks()
    with first.hold(f"k:{uuid4()}"):
        pass
    assert not has_pending_input(first._idle[0])
