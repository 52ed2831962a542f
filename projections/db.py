"""Read-model database: engine construction, shared metadata and the tracking table."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Engine, MetaData, String, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

metadata = MetaData()

#: One row per projection: the last log position folded in, written in the same transaction
#: as the rows it produced, and advanced only by compare-and-set.
tracking = Table(
    "projection_tracking",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False, default=0),
    Column("event_at", DateTime(timezone=True), nullable=True),
)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """SQLite: WAL + `BEGIN IMMEDIATE` so concurrent writers queue instead of deadlocking.
    Postgres: psycopg 3 with a pool sized like the API's thread pool."""
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
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    # Import every read-model module so its tables are registered on `metadata`.
    from projections import registry  # noqa: F401

    metadata.create_all(engine)
