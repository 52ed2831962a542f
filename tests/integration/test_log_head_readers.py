"""How the log head is read on each backend (adr/0020): on Postgres a connection of its own, replaced
when it breaks (the read is retried once); on SQLite also a probe that never waits, used while the log
has not moved."""
from __future__ import annotations

import asyncio

import psycopg
import pytest

from interfaces.event_store import AsyncPostgresHeadProbe, PostgresHeadReader, SqliteHeadProbe, async_head_probe
from tests.conftest import postgres_url


def _write(container) -> int:
    app = container.app
    app.register_user(f"u{app.head_position()}@example.com", "correct horse battery staple", "U", "r")
    return app.head_position()


def test_the_head_follows_writes(container):
    head = container.app.log_head
    assert head.check() == container.app.head_position()
    position = _write(container)
    assert head.check() == position


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_broken_postgres_connection_is_replaced_and_the_read_retried(container):
    reader = container.app.log_head._read
    assert isinstance(reader, PostgresHeadReader)
    first = reader()
    pid = reader._conn.info.backend_pid
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    position = _write(container)
    assert reader() == position >= (first or 0)
    assert reader._conn.info.backend_pid != pid
    container.app.log_head.close()
    assert reader._conn is None


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_the_async_postgres_probe_reads_the_head_on_the_loop_and_recovers_from_a_broken_connection(container):
    probe = async_head_probe(container.app.log_head.reader)
    assert isinstance(probe, AsyncPostgresHeadProbe)

    async def scenario() -> None:
        assert await probe() == container.app.head_position()
        position = _write(container)
        assert await probe() == position  # autocommit: every read sees the latest commit
        pid = probe._conn.info.backend_pid
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert await probe() is None  # never raises: the caller takes the checked path
        position = _write(container)
        assert await probe() == position  # reconnected
        assert probe._conn.info.backend_pid != pid

    asyncio.run(scenario())
    asyncio.run(scenario())  # another event loop: a connection of its own
    probe.close()
    assert probe._conn is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_there_is_no_async_probe_on_sqlite(container):
    assert async_head_probe(container.app.log_head.reader) is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_sqlite_probe_answers_only_while_nothing_moved(container):
    head = container.app.log_head
    probe = head._probe
    assert isinstance(probe, SqliteHeadProbe)
    assert head.unchanged() is None  # never checked yet
    checked = head.check()
    assert head.unchanged() == checked
    _write(container)
    assert head.unchanged() is None  # moved: the caller must check (and evict)
    assert head.check() == container.app.head_position() == head.unchanged()
    with probe._lock:  # in use elsewhere: it does not wait
        assert probe() is None
    head.close()
