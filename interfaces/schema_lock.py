"""Serialise schema creation across processes (API workers and dramatiq workers start together).

Concurrent `CREATE TABLE IF NOT EXISTS` on Postgres fails with "tuple concurrently updated";
a session-level advisory lock around start-up DDL makes it safe. SQLite needs nothing."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from interfaces.event_store import eventsourcing_env

LOCK_KEY = 0x70F0_5C4E  # arbitrary, constant: "PromptForge schema"


@contextlib.contextmanager
def schema_lock(event_store_url: str) -> Iterator[None]:
    env = eventsourcing_env(event_store_url)
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        yield
        return
    with psycopg.connect(
        host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"], dbname=env["POSTGRES_DBNAME"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True, connect_timeout=5,
    ) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
