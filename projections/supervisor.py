"""Driving the projections: catch-up, rebuild, status and read-your-writes waits.

- Fair: catch-up gives every projection one batch in turn until all are at the head, so under
  sustained writes no projection starves behind another that keeps finding new events.
- Isolated: a projection that fails is logged, recorded (`tracking.record_failure`, visible in
  status and metrics from any process) and skipped for the rest of the round; the others go on.
  It is retried on the next catch-up; moving past the failed position clears the failure.
The same supervisor runs in the API process (embedded default), in dramatiq workers and in the
CLI."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine

from projections import catchup, tracking
from projections.base import Projection
from projections.catchup import LostClaim
from projections.source import EventSource
from projections.vectors.projection import VectorProjection

log = logging.getLogger(__name__)
VECTORS = VectorProjection.name
VECTOR_BATCH = 256


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    #: The error it is stuck on (None when healthy), and since when.
    error: str | None = None
    failed_at: datetime | None = None


class ProjectionSupervisor:
    def __init__(self, engine: Engine, source: EventSource, sql: dict[str, Projection], *,
                 vectors: VectorProjection | None = None, vectors_enabled: bool = False, batch_size: int = 500):
        """`vectors`: the vector projection when this process writes the index; `vectors_enabled`:
        whether the deployment has one at all (status reports it even where it is not driven)."""
        self.engine = engine
        self.source = source
        self.sql = sql
        self.vectors = vectors
        self.vectors_enabled = vectors_enabled or vectors is not None
        self.batch_size = batch_size
        #: Notified whenever a batch was applied (read-your-writes waits listen to it).
        self.progress = threading.Condition()
        self.wakers: list[Callable[[], None]] = []

    @property
    def names(self) -> list[str]:
        """Every projection of this deployment, SQL read models first."""
        return list(self.sql) + ([VECTORS] if self.vectors_enabled else [])

    # -- catch-up ---------------------------------------------------------------------------
    def catch_up(self, names: list[str] | None = None) -> int:
        """Fold the log, up to its head when the call starts, into the named projections (default:
        all this process drives). Events committed meanwhile are for the next call (the runners are
        woken after every commit), so a call ends even under sustained writes."""
        wanted = names if names is not None else [*self.sql, *([VECTORS] if self.vectors else [])]
        applied = self._round_robin([n for n in wanted if n in self.sql], self.source.head())
        if VECTORS in wanted and self.vectors is not None:
            applied += self._guarded(VECTORS, lambda: self.vectors.catch_up(self.source, VECTOR_BATCH,
                                                                          lambda _n: self._notify())) or 0
            applied = max(applied, 0)
        return applied

    def _round_robin(self, names: list[str], until: int) -> int:
        """One batch per projection in turn until every one reached `until`."""
        applied = 0
        pending = list(names)
        while pending:
            still = []
            for name in pending:
                n = self._guarded(name, lambda name=name: catchup.catch_up_once(self.sql[name], self.source,
                                                                                 self.batch_size, until))
                if n is None:  # failed: recorded, retried on the next catch-up
                    continue
                if n:  # applied a batch, or lost the claim to another runner (-1): go on
                    still.append(name)
                if n > 0:
                    applied += n
                    self._notify()
            pending = still
        return applied

    def _guarded(self, name: str, step: Callable[[], int]) -> int | None:
        """Run one step of one projection: events applied, -1 when another runner claimed the batch
        first (not a failure: try again), None when it failed (after recording the failure)."""
        try:
            return step()
        except LostClaim:
            return -1
        except Exception as exc:  # isolate: one projection's failure must not stop the others
            log.exception("projection %s failed; the others go on, it is retried on the next catch-up", name)
            self._record(name, exc)
            return None

    def _record(self, name: str, exc: BaseException) -> None:
        try:
            with self.engine.connect() as conn:
                position = tracking.read(conn, name).position
            tracking.record_failure(self.engine, name, position, f"{type(exc).__name__}: {exc}")
        except Exception:  # the database itself may be what failed
            log.warning("could not record the failure of projection %s", name, exc_info=True)

    def _notify(self) -> None:
        with self.progress:
            self.progress.notify_all()

    # -- rebuild ----------------------------------------------------------------------------
    def rebuild(self, name: str, progress: Callable[[int], None] | None = None) -> int:
        """Replay the whole log into one projection: SQL read models are built beside their live
        tables and switched to (reads keep answering meanwhile); the vector index is reset and replayed."""
        return self.rebuild_all([name], progress)[name]

    def rebuild_all(self, names: list[str] | None = None, progress: Callable[[int], None] | None = None,
                    timings: dict[str, dict[str, float]] | None = None, processes: int = 1) -> dict[str, int]:
        """Rebuild the named projections (default: every SQL read model, and the vector index when
        this process writes it). The SQL read models are rebuilt in ONE pass over the log
        (catchup.rebuild): each batch is read and decoded once and folded into every projection's
        new tables; `processes` > 1 shares the projections among that many processes on Postgres
        (projections.forked). Returns the events folded per projection; raises catchup.RebuildFailed
        naming those that failed (left as they were) after the others were rebuilt."""
        wanted = names if names is not None else [*self.sql, *([VECTORS] if self.vectors else [])]
        unknown = [n for n in wanted if n not in self.sql and n != VECTORS]
        if unknown:
            raise KeyError(f"no such projection: {', '.join(unknown)}")
        if VECTORS in wanted and self.vectors is None:
            raise ValueError("the vector index is not open in this process")
        sql = [self.sql[n] for n in wanted if n in self.sql]
        try:
            rebuilt = catchup.rebuild(sql, self.source, batch_size=max(self.batch_size, catchup.REBUILD_BATCH),
                                      progress=progress, timings=timings, processes=processes) if sql else {}
        finally:
            self._notify()
        if VECTORS in wanted:
            self.vectors.reset()
            rebuilt[VECTORS] = self.vectors.catch_up(self.source, VECTOR_BATCH, progress)
        return rebuilt

    # -- status and waits -------------------------------------------------------------------
    def status(self) -> list[ProjectionStatus]:
        """Position, head and lag of each projection. Lag in seconds is the age of the oldest
        event the projection has not applied yet (0 when up to date)."""
        head = self.source.head()
        positions = tracking.read_all(self.engine)
        failures = tracking.current_failures(self.engine)
        out = []
        for name in self.names:
            position = positions[name].position if name in positions else 0
            lag_seconds = 0.0
            if position < head:
                pending = self.source.read(position, 1)
                lag_seconds = max(0.0, time.time() - _epoch(pending[0].at)) if pending else 0.0
            failure = failures.get(name)
            out.append(ProjectionStatus(name, position, head, max(0, head - position), lag_seconds,
                                        failure.error if failure else None, failure.failed_at if failure else None))
        return out

    def passed(self, position: int) -> bool:
        """Every projection `catch_up()` drives has applied `position` (one read of the tracking rows)."""
        positions = self.positions()
        return all(positions.get(n, 0) >= position for n in [*self.sql, *([VECTORS] if self.vectors else [])])

    def positions(self) -> dict[str, int]:
        return {name: p.position for name, p in tracking.read_all(self.engine).items()}

    def wait_for(self, position: int, timeout: float, names: list[str] | None = None) -> bool:
        """Block until every named projection (default: the SQL read models) reached `position`."""
        deadline = time.monotonic() + timeout
        names = names or list(self.sql)
        while True:
            positions = self.positions()
            if all(positions.get(n, 0) >= position for n in names):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for wake in self.wakers:
                wake()
            with self.progress:
                self.progress.wait(min(remaining, 0.05))


def _epoch(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()
