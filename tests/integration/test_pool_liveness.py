"""Pooled Postgres connections are pinged only when they may be gone (projections.liveness, adr/0030):
no round trip on a checkout in steady use, and a connection the server closed is still replaced
before anyone uses it, as the ping on every checkout did."""
from __future__ import annotations

from uuid import uuid4

import psycopg
import pytest
from sqlalchemy import text

import eventsourcing.utils
from projections.db import make_engine
from projections.liveness import QuietPoolCheck, quiet_event_store_checks
from tests.conftest import postgres_url

PINGS = ("", ";")


@pytest.fixture
def library_retries(monkeypatch):
    """The eventsourcing recorders' retry sleeps (a connection error met by a read or an insert)."""
    slept: list[float] = []
    monkeypatch.setattr(eventsourcing.utils, "sleep", slept.append)
    return slept


def _terminate(pids: list[int]) -> None:
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        admin.execute("SELECT pg_sleep(0.05)")  # the termination notices reach the sockets


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_the_event_store_pool_pings_only_a_connection_that_may_be_gone(container, statements, library_retries):
    recorder = container.app.recorder
    assert isinstance(recorder.datastore.pool._check, QuietPoolCheck)  # wired by the composition root
    for _ in range(10):  # every pooled connection checked out once
        recorder.select_events(uuid4(), limit=1)
    del statements[:]
    for _ in range(3):
        recorder.select_events(uuid4(), limit=1)
    assert [s for s in statements if s in PINGS] == []  # steady use: no round trip but the read
    pids = [conn.info.backend_pid for conn in recorder.datastore.pool._pool]
    assert pids
    _terminate(pids)
    del statements[:]
    recorder.select_events(uuid4(), limit=1)
    assert "" in statements  # the closed connection was noticed, pinged and replaced
    assert library_retries == []  # before the read used it: no failed attempt, no retry


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_an_event_store_connection_idle_too_long_is_pinged(container, statements):
    recorder = container.app.recorder
    assert quiet_event_store_checks(recorder, idle_ping_seconds=0)
    recorder.select_events(uuid4(), limit=1)
    del statements[:]
    recorder.select_events(uuid4(), limit=1)
    assert "" in statements


@pytest.mark.postgres
def test_the_read_model_pool_pings_only_a_connection_that_may_be_gone(statements):
    engine = make_engine(postgres_url(), pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            pid = conn.connection.dbapi_connection.info.backend_pid
        del statements[:]
        with engine.connect() as conn:
            conn.execute(text("SELECT 2"))
        assert [s for s in statements if s in PINGS] == []
        _terminate([pid])
        del statements[:]
        with engine.connect() as conn:  # no error: replaced at checkout
            assert conn.execute(text("SELECT 3")).scalar() == 3
            assert conn.connection.dbapi_connection.info.backend_pid != pid
        assert ";" in statements
    finally:
        engine.dispose()
