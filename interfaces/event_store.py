"""Translate the event-store URL into eventsourcing's persistence environment."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from domain.errors import Invalid


def eventsourcing_env(url: str, pool_size: int = 20, coalesce_saves: bool = False) -> dict[str, str]:
    """eventsourcing settings for `sqlite:///path`, `postgresql://...[?schema=name]` or `memory://`.

    Postgres keeps the library's default insert path (`LOCK TABLE ... IN EXCLUSIVE MODE`), which
    keeps commit order equal to notification id order: projections rely on it (adr/0002)."""
    parts = urlsplit(url)
    # Aggregate cache with fast-forward: a cached aggregate is brought up to date from the store on
    # every get (so other processes' writes are seen), copied out (a failed command cannot taint it).
    # Measured: 239 -> 392 commands/s on Postgres, 1 thread (bench/results/commands_throughput.md).
    cache = {"AGGREGATE_CACHE_MAXSIZE": "1000", "AGGREGATE_CACHE_FASTFORWARD": "y"}
    scheme = parts.scheme.split("+")[0]
    if scheme == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo", **cache}
    if scheme == "sqlite":
        path = url.split("sqlite:///", 1)[1] if "sqlite:///" in url else ""
        if not path:
            raise Invalid("sqlite event store URL needs a path: sqlite:///var/events.db", code="INVALID_SETTINGS")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path, "SQLITE_LOCK_TIMEOUT": "30",
                **cache}
    if scheme in ("postgresql", "postgres"):
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(pool_size),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_PRE_PING": "y",  # made quiet by the composition root (projections.liveness, adr/0030)
            # concurrent saves of a process in one insert, under the same table lock (adr/0022)
            "COALESCE_SAVES": "y" if coalesce_saves else "n",
            **cache,
        }
        schema = parse_qs(parts.query).get("schema")
        if schema:
            env["POSTGRES_SCHEMA"] = schema[0]
        return env
    raise Invalid(f"unsupported event store URL scheme {parts.scheme!r}", code="INVALID_SETTINGS")


class SqliteHeadProbe:
    """The embedded store's head read on a read-only connection of its own, without ever waiting
    (adr/0020): in WAL mode a reader does not wait for writers; if SQLite is busy all the same, or
    another thread is using the probe, it answers None and the caller takes the path that may wait.
    Cheap enough to run on the event loop (a few µs)."""

    def __init__(self, path: str, statement: str):
        self._path = path
        self._statement = statement
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def __call__(self) -> int | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=0,
                                             isolation_level=None, check_same_thread=False)
            return self._conn.execute(self._statement).fetchone()[0] or 0
        except sqlite3.Error:
            self.close()
            return None
        finally:
            self._lock.release()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def own_connection_args(recorder) -> tuple[str, dict]:
    """(conninfo, kwargs) to open a connection of one's own as the Postgres recorder's pool opens
    its connections (rows as tuples: no dict row factory)."""
    pool = recorder.datastore.pool
    return pool.conninfo, {k: v for k, v in pool.kwargs.items() if k != "row_factory"}


class PostgresHeadReader:
    """The Postgres store's head (the recorder's own statement) on one autocommit connection of its
    own (adr/0020): a failed read replaces the connection and is retried once, so a read is one
    round trip. `LogHead` reads one at a time; the lock only guards against misuse."""

    def __init__(self, recorder, connect_timeout: int = 5):
        self._conninfo, self._kwargs = own_connection_args(recorder)
        self._connect_timeout = connect_timeout
        self._statement = recorder.max_notification_id_statement
        self._lock = threading.Lock()
        self._conn = None

    def __call__(self) -> int | None:
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        self._conn = psycopg.connect(self._conninfo, autocommit=True,
                                                     connect_timeout=self._connect_timeout, **self._kwargs)
                    return self._conn.execute(self._statement).fetchone()[0]
                except psycopg.OperationalError:
                    self._close()
                    if attempt == 2:
                        raise
        return None  # pragma: no cover - the loop returns or raises

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()


class AsyncPostgresHeadProbe:
    """The Postgres store's head read on the event loop (adr/0020): psycopg's async connection, one
    per event loop, autocommit, the recorder's own statement. It never raises: on any database error
    it answers None (the caller then takes the checked path through the thread pool, which retries
    and reports) and reconnects on the next call. One read at a time (interfaces.http.head_check
    shares each read between the requests waiting for it)."""

    def __init__(self, reader: PostgresHeadReader):
        self._conninfo = reader._conninfo
        self._kwargs = reader._kwargs
        self._connect_timeout = reader._connect_timeout
        self._statement = reader._statement
        self._conn = None
        self._loop = None

    async def __call__(self) -> int | None:
        import asyncio

        import psycopg

        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a connection belongs to the loop that made it
            self._discard()
            self._loop = loop
        try:
            if self._conn is None:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, connect_timeout=self._connect_timeout, **self._kwargs)
            cursor = await self._conn.execute(self._statement)
            row = await cursor.fetchone()
            return row[0] or 0
        except psycopg.Error:
            self._discard()
            return None

    def _discard(self) -> None:
        """Drop the connection without its event loop (the loop may be closed already)."""
        if self._conn is not None:
            try:
                self._conn.pgconn.finish()
            finally:
                self._conn = None

    def close(self) -> None:
        self._discard()


def head_reader(url: str, recorder):
    """How `LogHead` reads the head: the recorder's `max_notification_id`, or on Postgres a
    connection of its own (PostgresHeadReader)."""
    if urlsplit(url).scheme.split("+")[0] in ("postgresql", "postgres") and hasattr(recorder, "datastore"):
        return PostgresHeadReader(recorder)
    return recorder.max_notification_id


def async_head_probe(reader) -> AsyncPostgresHeadProbe | None:
    """A head read for the event loop, where the store has one (Postgres); else None."""
    return AsyncPostgresHeadProbe(reader) if isinstance(reader, PostgresHeadReader) else None


def head_probe(url: str, recorder) -> SqliteHeadProbe | None:
    """A head read that never waits, where the store has one (a SQLite file); else None."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] != "sqlite" or "sqlite:///" not in url:
        return None
    table = getattr(recorder, "events_table_name", None)
    if not table:
        return None
    return SqliteHeadProbe(url.split("sqlite:///", 1)[1], f"SELECT MAX(rowid) FROM {table}")
