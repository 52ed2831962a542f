"""Bookkeeping of the projections: positions, schema versions, failures.

- `projection_tracking`: the last log position each projection folded in, written in the same
  transaction as the rows it produced, and advanced only by compare-and-set.
- `projection_schemas`: the version of each projection's table layout and fold; a projection
  whose code declares another version is dropped, recreated and replayed (`sync_schema`).
- `projection_failures`: the last failure of a projection, with the position it was stuck at.
  It is current while the projection's position has not moved past it, so recovering needs no
  extra write, and every process sees it (status, metrics).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import BigInteger, Column, Connection, DateTime, Engine, Integer, String, Table, delete, insert
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from projections.db import metadata, write

tracking = Table(
    "projection_tracking", metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False, default=0),
    Column("event_at", DateTime(timezone=True), nullable=True),
)
schemas = Table(
    "projection_schemas", metadata,
    Column("name", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)
failures = Table(
    "projection_failures", metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("error", String(500), nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class TrackedPosition:
    name: str
    position: int
    event_at: datetime | None


@dataclass(frozen=True)
class Failure:
    name: str
    position: int
    error: str
    failed_at: datetime


def ensure(engine: Engine, name: str) -> None:
    with engine.connect() as conn:
        if conn.execute(select(tracking.c.name).where(tracking.c.name == name)).first():
            return
    try:
        with write(engine) as conn:
            conn.execute(insert(tracking).values(name=name, position=0))
    except IntegrityError:  # another process created it first
        pass


def forget(engine: Engine, name: str) -> None:
    """Remove a projection that no longer exists from the bookkeeping."""
    with write(engine) as conn:
        for table in (tracking, schemas, failures):
            conn.execute(delete(table).where(table.c.name == name))


def read(conn: Connection, name: str) -> TrackedPosition:
    row = conn.execute(select(tracking).where(tracking.c.name == name)).one()
    return TrackedPosition(row.name, row.position, row.event_at)


def read_all(engine: Engine) -> dict[str, TrackedPosition]:
    with engine.connect() as conn:
        return {r.name: TrackedPosition(r.name, r.position, r.event_at) for r in conn.execute(select(tracking))}


def claim(conn: Connection, name: str, expected: int, new: int, event_at: datetime | None) -> bool:
    """Advance expected -> new. False when another runner moved it first (caller rolls back)."""
    result = conn.execute(
        update(tracking)
        .where(tracking.c.name == name, tracking.c.position == expected)
        .values(position=new, event_at=event_at)
    )
    return result.rowcount == 1


def lock(conn: Connection, name: str) -> None:
    """Take the tracking row's lock for the rest of the transaction (Postgres: FOR UPDATE; SQLite's
    write transaction already holds the database's write lock). A reset takes it before deleting
    rows, so a batch in flight either commits before the delete or loses its claim after it."""
    conn.execute(select(tracking.c.position).where(tracking.c.name == name).with_for_update())


def rewind(conn: Connection, name: str) -> None:
    conn.execute(update(tracking).where(tracking.c.name == name).values(position=0, event_at=None))


def move(conn: Connection, name: str, position: int, event_at: datetime | None) -> None:
    """Set the position outright (a rebuild switching to its tables, holding the row's lock)."""
    conn.execute(update(tracking).where(tracking.c.name == name).values(position=position, event_at=event_at))


# -- schema versions ------------------------------------------------------------------------
def schema_version(conn: Connection, name: str) -> int | None:
    return conn.execute(select(schemas.c.version).where(schemas.c.name == name)).scalar()


def set_schema_version(conn: Connection, name: str, version: int) -> None:
    if conn.execute(update(schemas).where(schemas.c.name == name).values(version=version)).rowcount == 0:
        conn.execute(insert(schemas).values(name=name, version=version))


# -- failures -------------------------------------------------------------------------------
def record_failure(engine: Engine, name: str, position: int, error: str) -> None:
    now = datetime.now(timezone.utc)
    with write(engine) as conn:
        conn.execute(delete(failures).where(failures.c.name == name))
        conn.execute(insert(failures).values(name=name, position=position, error=error[:500], failed_at=now))


def current_failures(engine: Engine) -> dict[str, Failure]:
    """Failures still current: the projection has not moved past the position it failed at."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(failures).join(tracking, tracking.c.name == failures.c.name)
            .where(tracking.c.position <= failures.c.position)
        )
        return {r.name: Failure(r.name, r.position, r.error, r.failed_at) for r in rows}
