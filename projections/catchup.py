"""Catch-up: fold the log into a projection exactly once, batch by batch.

Each batch runs in one read-model transaction that first claims the batch by advancing the
tracking position with a compare-and-set (which also takes the row lock on Postgres, and the
database write lock on SQLite), then folds the events. Failure anywhere rolls back both the
rows and the position; losing the claim to another runner rolls back and re-reads."""
from __future__ import annotations

from collections.abc import Callable

from projections import tracking
from projections.base import Projection
from projections.source import EventSource

DEFAULT_BATCH = 500


class LostClaim(Exception):
    """Another runner advanced the position first; this batch was not applied."""


def catch_up_once(projection: Projection, source: EventSource, batch_size: int = DEFAULT_BATCH) -> int:
    """Apply at most one batch. Returns the number of events applied (0 when up to date)."""
    with projection.engine.begin() as conn:
        current = tracking.read(conn, projection.name).position
        batch = source.read(current, batch_size)
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
    """Delete the projection's rows and rewind it to position 0, atomically."""
    with projection.engine.begin() as conn:
        projection.reset(conn)
        tracking.set_position(conn, projection.name, 0)
