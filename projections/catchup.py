"""Catch-up: fold the log into a projection exactly once, batch by batch; rebuild beside, then switch.

Each batch runs in one read-model transaction that first claims the batch by advancing the
tracking position with a compare-and-set (which also takes the row lock on Postgres, and the
database write lock on SQLite), then folds the events (in memory, written back with a few
set-based statements: projections.batch). Failure anywhere rolls back both the rows and the
position; losing the claim to another runner rolls back and re-reads.

A rebuild (`rebuild`) reads the log once for any number of projections, folds it into tables built
beside the live ones (projections.beside) and switches each projection to its new tables, with the
tracking position, in one transaction that holds the tracking row's lock: readers keep getting
answers from the live tables all along, and the live catch-up keeps folding into them."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from projections import tracking
from projections.base import Projection
from projections.batch import MAX_ROWS_IN_MEMORY, Unit
from projections.beside import Beside
from projections.db import metadata, write
from projections.source import EventSource
from projections.writer_lock import WriterLock

log = logging.getLogger(__name__)
DEFAULT_BATCH = 500
#: Events per transaction of a rebuild (its tables are its own: bigger batches, fewer statements).
REBUILD_BATCH = 5000
#: How long the switch waits for the tracking row and the live tables' locks (Postgres) before giving up.
SWITCH_LOCK_TIMEOUT_S = 30


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


class RebuildFailed(Exception):
    """Some projections could not be rebuilt (their live tables are unchanged); the others were."""

    def __init__(self, failures: dict[str, BaseException], rebuilt: dict[str, int]):
        self.failures = failures
        self.rebuilt = rebuilt
        super().__init__("; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failures.items()))


@dataclass
class _Build:
    projection: Projection
    beside: Beside
    unit: Unit
    applied: int = 0
    switched: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def clock(self, what: str, seconds: float) -> None:
        self.timings[what] = self.timings.get(what, 0.0) + seconds


def rebuild(projections: Sequence[Projection], source: EventSource, *, batch_size: int = REBUILD_BATCH,
            progress: Callable[[int], None] | None = None, timings: dict[str, dict[str, float]] | None = None,
            max_rows: int = MAX_ROWS_IN_MEMORY) -> dict[str, int]:
    """Rebuild `projections` from the whole log in one pass: fold it into tables built beside the
    live ones, then switch each projection to them (with its position) under its tracking lock.
    Returns the events folded per projection. A projection that fails is left as it was (its new
    tables dropped) while the others go on; `RebuildFailed` then names it.

    `timings` (optional) receives, per projection, seconds spent folding (`fold`: the handlers, in
    Python), writing (`write`), indexing (`index`) and switching (`switch`); and, under "", reading
    the log (`read`)."""
    if not projections:
        return {}
    engine = projections[0].engine
    failures: dict[str, BaseException] = {}
    shared: dict[str, float] = {}
    with WriterLock(engine, "rebuild").hold(wait=True):  # one rebuild at a time: the new tables are its own
        builds = []
        for p in projections:
            beside = Beside.of(p.tables)
            builds.append(_Build(p, beside, p.unit(beside.tables, fresh=True, max_rows=max_rows)))
        everything = list(builds)
        position, event_at = 0, None
        try:
            with write(engine) as conn:
                for b in builds:
                    b.beside.create(conn)
            # 1. one pass over the log, every projection folding each batch
            while True:
                t = time.perf_counter()
                batch = source.read(position, batch_size)
                shared["read"] = shared.get("read", 0.0) + time.perf_counter() - t
                if not batch:
                    break
                with write(engine) as conn:
                    _scratch(conn)
                    for b in list(builds):
                        if not _step(conn, b, batch, failures, final=False):
                            builds.remove(b)
                position, event_at = batch[-1].position, batch[-1].at
                if progress:
                    progress(len(batch))
            # 2. the rows still in memory, then the indexes of the new tables
            with write(engine) as conn:
                _scratch(conn)
                for b in list(builds):
                    try:
                        with conn.begin_nested():
                            t = time.perf_counter()
                            b.unit.flush(conn, final=True)
                            b.clock("write", time.perf_counter() - t)
                            t = time.perf_counter()
                            b.beside.index(conn)
                            b.clock("index", time.perf_counter() - t)
                    except Exception as exc:  # noqa: BLE001 - isolated: the others go on
                        _failed(b, exc, failures)
                        builds.remove(b)
            # 3. switch each projection: under its tracking lock, fold what was logged since, swap tables
            for b in list(builds):
                try:
                    t = time.perf_counter()
                    with write(engine) as conn:
                        if conn.dialect.name == "postgresql":  # the tracking row: an in-flight live batch
                            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{SWITCH_LOCK_TIMEOUT_S}s'")
                        tracking.lock(conn, b.projection.name)
                        at, until = position, event_at
                        while True:
                            more = source.read(at, batch_size)
                            if not more:
                                break
                            b.unit.fold(conn, more)
                            b.unit.flush(conn, final=True)
                            b.applied += len(more)
                            at, until = more[-1].position, more[-1].at
                        b.beside.switch(conn, patience_s=SWITCH_LOCK_TIMEOUT_S)
                        tracking.move(conn, b.projection.name, at, until)
                    b.switched = True
                    b.clock("switch", time.perf_counter() - t)
                except Exception as exc:  # noqa: BLE001 - isolated: the others go on
                    _failed(b, exc, failures)
                    builds.remove(b)
        finally:
            leftovers = [b for b in everything if not b.switched]
            if leftovers:
                try:
                    with write(engine) as conn:
                        for b in leftovers:
                            b.beside.drop(conn)
                except Exception:  # noqa: BLE001 - best effort: the next rebuild drops them first
                    log.warning("could not drop the tables a failed rebuild left", exc_info=True)
    if timings is not None:
        timings[""] = shared
        for b in builds:
            timings[b.projection.name] = b.timings
    rebuilt = {b.projection.name: b.applied for b in builds}
    if failures:
        raise RebuildFailed(failures, rebuilt)
    return rebuilt


def _step(conn: Connection, b: _Build, batch: list, failures: dict[str, BaseException], *, final: bool) -> bool:
    """Fold one batch into one projection's new tables, isolated from the others by a savepoint."""
    try:
        with conn.begin_nested():
            t = time.perf_counter()
            b.unit.fold(conn, batch)
            t2 = time.perf_counter()
            b.unit.flush(conn, final=final)
            b.clock("fold", t2 - t)
            b.clock("write", time.perf_counter() - t2)
        b.applied += len(batch)
        return True
    except Exception as exc:  # noqa: BLE001 - isolated: the others go on
        _failed(b, exc, failures)
        return False


def _failed(b: _Build, exc: BaseException, failures: dict[str, BaseException]) -> None:
    log.error("rebuilding projection %s failed; its live tables are unchanged, the others go on",
              b.projection.name, exc_info=exc)
    failures[b.projection.name] = exc


def _scratch(conn: Connection) -> None:
    """Writes to the tables built beside need not wait for the disk: until the switch nothing reads
    them, a crash only leaves them to be built again, and the switch's own commit is durable (and,
    the log being sequential, makes every earlier write durable with it)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")


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
