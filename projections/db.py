"""Read-model database: engines, shared metadata, and the one way to open a write transaction.

SQLite (embedded default) runs in WAL mode, where readers never wait for the writer. Only write
transactions take the database's write lock at BEGIN (`BEGIN IMMEDIATE`, so concurrent writers
queue on the busy timeout instead of failing on a lock upgrade); reads begin deferred and keep
reading the last committed state while a write is in progress. Every write goes through
`write(engine)`; a plain `engine.connect()` is for reads.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from projections.liveness import quiet_pre_ping

metadata = MetaData()
_WRITE = "promptforge_write"


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """SQLite: WAL, deferred reads, immediate writes. Postgres: psycopg 3 with a bounded pool."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):  # pragma: no cover - exercised by every sqlite test
            dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event emit BEGIN
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pragma: no cover
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, pool_size=pool_size, max_overflow=pool_size)
    quiet_pre_ping(engine)  # a ping where it can find a closed connection, not on every checkout (adr/0030)
    return engine


def engine_like(engine: Engine, *, pool_size: int = 4) -> Engine:
    """A new engine to the same database with a pool of its own: what a forked process uses (its
    parent's pooled connections are the parent's sessions)."""
    return make_engine(engine.url.render_as_string(hide_password=False), pool_size=pool_size)


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed on success, rolled back on any exception."""
    with engine.connect().execution_options(**{_WRITE: True}) as conn:
        with conn.begin():
            yield conn


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_schema(engine: Engine) -> None:
    # Import every read-model module so its tables are registered on `metadata`.
    from projections import registry  # noqa: F401

    metadata.create_all(engine)
