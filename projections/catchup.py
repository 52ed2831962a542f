"""Catch-up: fold the log into a projection exactly once, batch by batch.

Each batch runs in one read-model transaction that first claims the batch by advancing the
tracking position with a compare-and-set (which also takes the row lock on Postgres, and the
database write lock on SQLite), then folds the events. Failure anywhere rolls back both the
rows and the position; losing the claim to another runner rolls back and re-reads."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from projections import tracking
from projections.base import Projection
from projections.db import metadata, write
from projections.source import EventSource

DEFAULT_BATCH = 500


class LostClaim(Exception):
    """Another runner advanced the position first; this batch was not applied."""


def catch_up_once(projection: Projection, source: EventSource, batch_size: int = DEFAULT_BATCH,
                  until: int | None = None) -> int:
    """Apply at most one batch (of events up to position `until`, when given). Returns the number
    of events applied (0 when up to date)."""
    with write(projection.engine) as conn:
        current = tracking.read(conn, projection.name).position
        if until is not None and current >= until:
            return 0
        batch = source.read(current, batch_size if until is None else min(batch_size, until - current))
        if not batch:
            return 0
        last = batch[-1]
        if not tracking.claim(conn, projection.name, current, last.position, last.at):
            raise LostClaim(projection.name)
        projection.fold(conn, batch)
        return len(batch)


def catch_up(
    projection: Projection, source: EventSource, batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Apply batches until the projection has reached the head of the log."""
    applied = 0
    while True:
        try:
            n = catch_up_once(projection, source, batch_size)
        except LostClaim:
            continue
        if n == 0:
            return applied
        applied += n
        if progress:
            progress(n)


def reset(projection: Projection) -> None:
    """Delete the projection's rows and rewind it to position 0, atomically.

    The tracking row is locked FIRST: a batch in flight has either committed (its rows are then
    deleted here) or waits and then loses its compare-and-set. Deleting first let an in-flight
    batch's rows survive the delete, and the replay then hit duplicate keys forever."""
    with write(projection.engine) as conn:
        tracking.lock(conn, projection.name)
        projection.reset(conn)
        tracking.rewind(conn, projection.name)


def sync_schema(engine: Engine, projection: type[Projection] | Any) -> bool:
    """Make the stored layout of a projection (class) match its `schema_version`: a projection whose recorded version
    differs (or that predates versioning, i.e. version 1 with no record) is dropped, recreated
    and rewound, so the runner replays it. Returns True when it was reset. Run under the schema
    lock at start-up, after `create_schema`."""
    tracking.ensure(engine, projection.name)
    with engine.connect() as conn:
        recorded = tracking.schema_version(conn, projection.name)
        position = tracking.read(conn, projection.name).position
    if recorded is None and position == 0:  # a new projection: nothing to migrate
        with write(engine) as conn:
            tracking.set_schema_version(conn, projection.name, projection.schema_version)
        return False
    if (recorded or 1) == projection.schema_version:
        if recorded is None:
            with write(engine) as conn:
                tracking.set_schema_version(conn, projection.name, projection.schema_version)
        return False
    tables = list(getattr(projection, "tables", ()))
    with write(engine) as conn:
        tracking.lock(conn, projection.name)
        metadata.drop_all(conn, tables=tables)
        metadata.create_all(conn, tables=tables)
        tracking.rewind(conn, projection.name)
        tracking.set_schema_version(conn, projection.name, projection.schema_version)
    return True
