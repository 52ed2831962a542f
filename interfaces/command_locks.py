"""The commands' cross-process lock on Postgres: session advisory locks on connections of their own.

`KeyedLocks` (application.serialise) queues the threads of one process on a lock per key; across
API processes, the composition root adds this (adr/0019, adr/0025). Each hold is two round trips:
`pg_advisory_lock` and `pg_advisory_unlock`, on an autocommit connection kept for locks only (adr/0030).
(It used to borrow a read-model connection: a pre-ping, then BEGIN, lock, COMMIT, and BEGIN,
unlock, COMMIT; seven round trips, five of them with the lock held, on every batch of creations.)

- The keys are `projections.writer_lock.advisory_key("command:" + key)`, as before: a process of the
  previous release and one of this release still exclude each other.
- A connection is used by one holder at a time and kept for the next (one per concurrent holder,
  so at most one per thread that ever held a lock at once); none is borrowed from a pool the
  commands themselves need, so a holder never waits for a connection its own save needs.
- A connection that the server closed (a restart, `pg_terminate_backend`) is noticed without a
  round trip (projections.liveness.has_pending_input): it is dropped, a new one made.
- `hold(key, read_after=(stream, version))` also reads that stream's events after `version`, in the
  same round trip as the lock: the read is pipelined behind `pg_advisory_lock`, so the server runs
  it once the lock is granted (a statement of its own in READ COMMITTED, set on every lock
  connection: its snapshot is taken after the grant and sees every commit of the previous holder).
  The prompt quota's writer fast-forwards the quota it kept with them (application.quota_reads,
  adr/0031) instead of a read of its own under the lock.
- A failed lock statement drops the connection (a session lock dies with it) and tries once more on
  a new one; a failed unlock drops it too, which releases the lock. The lock only prevents
  collisions: the event store's optimistic concurrency stays the guarantee (a quota counted twice
  is refused at the same stream version), so a lock lost with its connection never loses a write.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from interfaces.event_store import own_connection_args
from projections.liveness import has_pending_input
from projections.writer_lock import advisory_key

LOCK = "SELECT pg_advisory_lock(%s)"
UNLOCK = "SELECT pg_advisory_unlock(%s)"
#: Every lock connection reads in READ COMMITTED whatever the server's default: a read pipelined
#: behind the lock must take its snapshot after the grant (hold's `read_after`).
READ_COMMITTED = "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"


def events_after_statement(recorder: Any) -> Any:
    """The recorder's events table, one stream's events after a version, oldest first."""
    from psycopg.sql import SQL, Identifier

    return SQL("SELECT originator_id, originator_version, topic, state FROM {schema}.{table}"
               " WHERE originator_id = %s AND originator_version > %s ORDER BY originator_version").format(
        schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))


class PostgresCommandLocks:
    """`hold(key)`: a context manager holding the key's advisory lock (see the module docstring).
    `conninfo` and `kwargs` as the event store's pool connects (`own_connection_args`)."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any], connect_timeout: int = 5,
                 events_after: Any = None):
        """`events_after`: the statement of `hold`'s `read_after` (events_after_statement)."""
        self._conninfo = conninfo
        self._events_after = events_after
        self._kwargs = kwargs
        self._connect_timeout = connect_timeout
        self._idle: list[Any] = []
        self._guard = threading.Lock()
        self._closed = False

    @classmethod
    def for_recorder(cls, recorder: Any) -> "PostgresCommandLocks":
        return cls(*own_connection_args(recorder), events_after=events_after_statement(recorder))

    @contextmanager
    def hold(self, key: str, read_after: tuple[UUID, int] | None = None) -> Iterator[list[StoredEvent] | None]:
        """Hold the key's lock; with `read_after=(stream, version)`, yields that stream's events after
        `version` as committed when the lock was granted (None without)."""
        number = advisory_key(f"command:{key}")
        conn, events = self._locked(number, read_after)
        try:
            yield events
        finally:
            self._unlock(conn, number)

    def _locked(self, number: int, read_after: tuple[UUID, int] | None) -> tuple[Any, list[StoredEvent] | None]:
        import psycopg

        if read_after is not None and self._events_after is None:
            raise ValueError("this lock was made without the events table: read_after is not available")
        for attempt in (1, 2):
            conn = self._take()
            try:
                if read_after is None:
                    conn.execute(LOCK, (number,))
                    return conn, None
                with conn.pipeline():  # one round trip: the read runs once the lock is granted
                    conn.execute(LOCK, (number,))
                    rows = conn.execute(self._events_after, read_after)
                return conn, [StoredEvent(originator_id=r[0], originator_version=r[1], topic=r[2], state=bytes(r[3]))
                              for r in rows.fetchall()]
            except psycopg.OperationalError:
                self._drop(conn)
                if attempt == 2:
                    raise
            except BaseException:  # interrupted while waiting: the lock may be held; drop it with the connection
                self._drop(conn)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _unlock(self, conn: Any, number: int) -> None:
        try:
            conn.execute(UNLOCK, (number,))
        except BaseException:
            self._drop(conn)  # closing the session releases its locks
            raise
        with self._guard:
            if not self._closed:
                self._idle.append(conn)
                return
        self._drop(conn)

    def _take(self) -> Any:
        import psycopg

        while True:
            with self._guard:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=self._connect_timeout,
                                       **self._kwargs)
                try:
                    conn.execute(READ_COMMITTED)
                except BaseException:
                    self._drop(conn)
                    raise
                return conn
            if not has_pending_input(conn):
                return conn
            self._drop(conn)

    @staticmethod
    def _drop(conn: Any) -> None:
        try:
            conn.close()
        except Exception:  # pragma: no cover - closing a broken connection
            pass

    def close(self) -> None:
        with self._guard:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._drop(conn)
