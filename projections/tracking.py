"""Tracking positions: read, claim by compare-and-set, reset."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from projections.db import tracking


@dataclass(frozen=True)
class TrackedPosition:
    name: str
    position: int
    event_at: datetime | None


def ensure(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        if conn.execute(select(tracking.c.name).where(tracking.c.name == name)).first():
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(tracking).values(name=name, position=0))
    except IntegrityError:  # another process created it first
        pass


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


def set_position(conn: Connection, name: str, position: int) -> None:
    conn.execute(update(tracking).where(tracking.c.name == name).values(position=position, event_at=None))
