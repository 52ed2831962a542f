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

import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from eventsourcing.utils import resolve_topic
from sqlalchemy import Connection, Engine, Table

from projections import tracking
from projections.base import Projection
from projections.batch import MAX_ROWS_IN_MEMORY, Unit, Write, execute
from projections.beside import Beside
from projections.db import metadata, write
from projections.events import Envelope
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


@dataclass(eq=False)
class _Build:
    projection: Projection
    beside: Beside
    unit: Unit
    applied: int = 0
    switched: bool = False
    #: Why it failed (in the main thread or a background one): it is then left out of the rest.
    failed: BaseException | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def clock(self, what: str, seconds: float) -> None:
        self.timings[what] = self.timings.get(what, 0.0) + seconds


def rebuild(projections: Sequence[Projection], source: EventSource, *, batch_size: int = REBUILD_BATCH,
            progress: Callable[[int], None] | None = None, timings: dict[str, dict[str, float]] | None = None,
            max_rows: int = MAX_ROWS_IN_MEMORY, processes: int = 1) -> dict[str, int]:
    """Rebuild `projections` from the whole log in one pass: fold it into tables built beside the
    live ones, then switch each projection to them (with its position) under its tracking lock.
    Returns the events folded per projection. A projection that fails is left as it was (its new
    tables dropped) while the others go on; `RebuildFailed` then names it.

    Each page of the log is read once, decoding only the events some projection handles, and each
    projection folds only the events it handles. On Postgres the work is pipelined over the two
    kinds of processor a rebuild has (this process, GIL-bound, and the database server): a thread
    reads (and decodes) the next page while the main thread folds this one, a writer thread on its
    own connection COPYs what the last batches produced, and the new tables' indexes are built on
    two more connections as soon as each table is loaded, while the other tables are still being
    written. SQLite has one writer: there the batches are read, folded and written one after the
    other. Python's cyclic garbage collector is paused meanwhile (`_collector_paused`).

    `processes` > 1 (Postgres, a source that can be read from another process: `postgres_log`):
    the projections are shared among that many processes (projections.forked), this one and
    children forked from it, each making its own pass over the log for its share, so that more than
    one core runs Python. A child that dies fails its projections only.

    `timings` (optional) receives, per projection, seconds the main thread (of the process that rebuilt
    it) spent folding (`fold`: the handlers, in Python), writing (`write`; on Postgres: waiting for the
    writer), indexing (`index`) and switching (`switch`); and, under "", this process's main thread's
    waits for the log (`read`), for the writer (`write`) and for the indexes (`index`), and the busy
    seconds of its background threads (`read_thread`, `write_thread`, `index_thread`); the same for
    each child under "process N"."""
    if not projections:
        return {}
    engine = projections[0].engine
    with WriterLock(engine, "rebuild").hold(wait=True), _collector_paused():  # one rebuild at a time
        log_of = getattr(source, "postgres_log", None)
        other_log = log_of() if (processes > 1 and len(projections) > 1 and engine.dialect.name == "postgresql"
                                 and log_of is not None and hasattr(os, "fork")) else None
        if other_log is None:
            return _rebuild_here(projections, source, batch_size=batch_size, progress=progress, timings=timings,
                                 max_rows=max_rows)
        from projections import forked

        groups = forked.share(projections, processes)
        children = []
        try:
            here = list(groups[0])
            for group in groups[1:]:
                try:
                    children.append(forked.start(group, partial(
                        _rebuild_child, group, other_log, batch_size=batch_size, max_rows=max_rows)))
                except OSError:  # no process to be had (limits, memory): this one rebuilds its share
                    log.warning("could not start a rebuild process; rebuilding its share here", exc_info=True)
                    here.extend(group)
            failures: dict[str, BaseException] = {}
            try:
                rebuilt = _rebuild_here(here, source, batch_size=batch_size, progress=progress,
                                        timings=timings, max_rows=max_rows)
            except RebuildFailed as exc:
                rebuilt, failures = dict(exc.rebuilt), dict(exc.failures)
            for i, child in enumerate(children, start=2):
                result = child.wait()
                rebuilt.update(result.rebuilt)
                failures.update(result.failures)
                if result.failures:  # a child that died could not drop its new tables
                    _drop_beside(engine, [p for p in child.projections if p.name in result.failures])
                if timings is not None:
                    child_timings = dict(result.timings)
                    timings[f"process {i}"] = child_timings.pop("", {})
                    timings.update(child_timings)
        finally:
            for child in children:  # an error here: stop the others and drop what they left
                if child.running:
                    child.stop()
                    _drop_beside(engine, child.projections)
    rebuilt = {p.name: rebuilt[p.name] for p in projections if p.name in rebuilt}
    if failures:
        raise RebuildFailed(failures, rebuilt)
    return rebuilt


def _rebuild_child(projections: list[Projection], source: Any, *, batch_size: int, max_rows: int
                   ) -> tuple[dict[str, int], dict[str, BaseException], dict[str, dict[str, float]]]:
    """The share of a forked child (projections.forked): on an engine and a log reader of its own (its
    parent's connections are the parent's), under the parent's rebuild lock."""
    from projections.db import engine_like

    engine = engine_like(projections[0].engine)
    for p in projections:
        p.engine = engine
    timings: dict[str, dict[str, float]] = {}
    try:
        try:
            rebuilt, failures = _rebuild_here(projections, source, batch_size=batch_size, timings=timings,
                                              max_rows=max_rows), {}
        except RebuildFailed as exc:
            rebuilt, failures = exc.rebuilt, exc.failures
    finally:
        source.close()
        engine.dispose()
    return rebuilt, failures, timings


def _drop_beside(engine: Engine, projections: Sequence[Projection]) -> None:
    try:
        with write(engine) as conn:
            for p in projections:
                Beside.of(p.tables).drop(conn)
    except Exception:  # noqa: BLE001 - best effort: the next rebuild drops them first
        log.warning("could not drop the tables a failed rebuild left", exc_info=True)


def _rebuild_here(projections: Sequence[Projection], source: EventSource, *, batch_size: int,
                  progress: Callable[[int], None] | None = None, timings: dict[str, dict[str, float]] | None = None,
                  max_rows: int = MAX_ROWS_IN_MEMORY) -> dict[str, int]:
    """`rebuild` in this process, under the caller's rebuild lock."""
    if not projections:
        return {}
    engine = projections[0].engine
    failures: dict[str, BaseException] = {}
    shared: dict[str, float] = {}
    started = time.perf_counter()
    pipelined = engine.dialect.name == "postgresql"
    builds = []
    for p in projections:
        beside = Beside.of(p.tables)
        builds.append(_Build(p, beside, p.unit(beside.tables, fresh=True, max_rows=max_rows)))
    everything = list(builds)
    position, event_at = 0, None
    background: list[_Workers] = []
    try:
        with write(engine) as conn:
            for b in builds:
                b.beside.create(conn)
        writer = indexer = None
        if pipelined:
            writer = _Workers(engine, 1, "write", failures, scratch=True, queued=WRITER_QUEUE)
            indexer = _Workers(engine, INDEX_CONNECTIONS, "index", failures)
            background = [writer, indexer]
        # 1. one pass over the log, every projection folding the events it handles
        takers: dict[type, tuple[_Build, ...]] = {}
        pages = _Pages(source, batch_size, everything, shared, prefetch=pipelined)
        try:
            for events, last, read in pages:
                mine = _share(events, everything, takers)
                if writer is not None:
                    _fold_pipelined(engine, builds, mine, read, writer, failures)
                else:
                    with write(engine) as conn:
                        _scratch(conn)
                        for b in list(builds):
                            if not _step(conn, b, mine.get(b, ()), read, failures, final=False):
                                builds.remove(b)
                position, event_at = last.position, last.at
                if progress:
                    progress(read)
        finally:
            pages.close()
        # 2. the rows still in memory, then the indexes of the new tables
        if writer is not None and indexer is not None:
            _finish_pipelined(builds, writer, indexer, failures, shared)
        else:
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
        for w in background:
            shared[f"{w.kind}_thread"] = w.busy
            w.close()
        background = []
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
        for w in background:  # an error in the main thread: stop the background work first
            w.close(abandon=True)
        for b in everything:
            b.unit.close()
        leftovers = [b for b in everything if not b.switched]
        if leftovers:
            try:
                with write(engine) as conn:
                    for b in leftovers:
                        b.beside.drop(conn)
            except Exception:  # noqa: BLE001 - best effort: the next rebuild drops them first
                log.warning("could not drop the tables a failed rebuild left", exc_info=True)
    if timings is not None:
        shared["wall"] = time.perf_counter() - started
        timings[""] = shared
        for b in builds:
            timings[b.projection.name] = b.timings
    rebuilt = {b.projection.name: b.applied for b in builds}
    if failures:
        raise RebuildFailed(failures, rebuilt)
    return rebuilt


#: Connections that build the new tables' indexes at the end of a rebuild on Postgres (besides the
#: main one and the writer's): the database server had one core idle while Python folded.
INDEX_CONNECTIONS = 2
#: Writes a rebuild's writer may have queued before the main thread waits for it (the rows of a few
#: batches in memory at most).
WRITER_QUEUE = 24
#: Pages of the log the reading thread may have read ahead.
READ_AHEAD = 2


class _Pages:
    """The log, page by page: (the events some projection handles, the last event read, how many
    were read). Only the events whose class some projection handles are decoded (when the source
    can tell from the topic: `open_pass` or `read_wanted`). With `prefetch`, a thread reads the next pages while
    the caller folds this one (the database answers the query meanwhile, and psycopg waits for it
    without the GIL)."""

    def __init__(self, source: EventSource, batch_size: int, builds: list[_Build], shared: dict[str, float], *,
                 prefetch: bool):
        self.source = source
        self.batch_size = batch_size
        self.builds = builds
        self.shared = shared
        self.wanted_topics: dict[str, bool] = {}
        self.read_s = 0.0
        self.queue: queue.Queue | None = queue.Queue(READ_AHEAD) if prefetch else None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        #: The source's reader for this pass (`open_pass`: on Postgres a connection of its own), if it has one.
        self.log_pass: Any = None

    def _wanted(self, topic: str) -> bool:
        found = self.wanted_topics.get(topic)
        if found is None:
            cls = resolve_topic(topic)
            found = self.wanted_topics[topic] = any(b.projection.handles(cls) for b in self.builds)
        return found

    def _read(self, after: int) -> tuple[list[Envelope], Envelope | None, int]:
        t = time.perf_counter()
        if self.log_pass is None and hasattr(self.source, "open_pass"):
            self.log_pass = self.source.open_pass()
        read_wanted = self.log_pass.read_wanted if self.log_pass is not None else getattr(self.source, "read_wanted", None)
        if read_wanted is not None:
            page = read_wanted(after, self.batch_size, self._wanted)
        else:
            events = self.source.read(after, self.batch_size)
            page = (events, events[-1] if events else None, len(events))
        self.read_s += time.perf_counter() - t
        return page

    def _ahead(self) -> None:
        after = 0
        try:
            while not self.stop.is_set():
                page = self._read(after)
                self._put(page)
                if page[1] is None:
                    return
                after = page[1].position
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            self._put(exc)

    def _put(self, item: Any) -> None:
        assert self.queue is not None
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[tuple[list[Envelope], Envelope, int]]:
        if self.queue is None:
            after = 0
            while True:
                t = time.perf_counter()
                events, last, read = self._read(after)
                self.shared["read"] = self.shared.get("read", 0.0) + time.perf_counter() - t
                if last is None:
                    return
                yield events, last, read
                after = last.position
        self.thread = threading.Thread(target=self._ahead, name="rebuild-reader", daemon=True)
        self.thread.start()
        while True:
            t = time.perf_counter()
            item = self.queue.get()
            self.shared["read"] = self.shared.get("read", 0.0) + time.perf_counter() - t
            if isinstance(item, BaseException):
                raise item
            events, last, read = item
            if last is None:
                return
            yield events, last, read

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
            self.shared["read_thread"] = self.read_s
        if self.log_pass is not None:
            self.log_pass.close()
            self.log_pass = None


def _share(events: list[Envelope], builds: list[_Build], takers: dict[type, tuple[_Build, ...]]
           ) -> dict[_Build, list[Envelope]]:
    """The events of a page each projection handles, in log order."""
    mine: dict[_Build, list[Envelope]] = {b: [] for b in builds}
    for env in events:
        cls = env.event.__class__
        found = takers.get(cls)
        if found is None:
            found = takers[cls] = tuple(b for b in builds if b.projection.handles(cls))
        for b in found:
            mine[b].append(env)
    return mine


def _fold_pipelined(engine: Engine, builds: list[_Build], mine: dict[_Build, list[Envelope]], read: int,
                    writer: _Workers, failures: dict[str, BaseException]) -> None:
    """Fold a page into every projection (main thread) and queue what it produced for the writer."""
    for b in list(builds):
        if b.failed is not None:
            builds.remove(b)
            continue
        events = mine.get(b)
        if events:
            try:
                if b.unit.complete:
                    t = time.perf_counter()
                    b.unit.fold(None, events)  # type: ignore[arg-type] - reads nothing: every row is in memory
                    ops = b.unit.writes(final=False)
                    b.clock("fold", time.perf_counter() - t)
                else:  # it wrote out and forgot rows (too many): they are read back, once written
                    t = time.perf_counter()
                    writer.wait(b)
                    b.clock("write", time.perf_counter() - t)
                    if b.failed is not None:
                        builds.remove(b)
                        continue
                    t = time.perf_counter()
                    with engine.connect() as conn:
                        b.unit.fold(conn, events)
                    ops = b.unit.writes(final=False)
                    b.clock("fold", time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001 - isolated: the others go on
                _failed(b, exc, failures)
                builds.remove(b)
                continue
            if ops:
                t = time.perf_counter()
                writer.submit(b, partial(_write, ops))
                b.clock("write", time.perf_counter() - t)
        b.applied += read


def _write(ops: list[Write], conn: Connection) -> None:
    execute(conn, ops, bulk=True)


def _finish_pipelined(builds: list[_Build], writer: _Workers, indexer: _Workers,
                      failures: dict[str, BaseException], shared: dict[str, float]) -> None:
    """The rows still in memory, table by table, and each table's indexes as soon as its rows are in
    (the tables already complete first, so their indexes are built while the others are written)."""
    plans = []
    for b in list(builds):
        if b.failed is not None:
            builds.remove(b)
            continue
        t = time.perf_counter()
        ops = b.unit.writes(final=True)
        b.clock("write", time.perf_counter() - t)
        by_table: dict[Table, list[Write]] = {}
        for op in ops:
            by_table.setdefault(op.target, []).append(op)
        for live, new in b.beside.tables.items():
            plans.append((b, by_table.get(new, []), b.beside.index_steps(live, "postgresql")))
    plans.sort(key=lambda plan: bool(plan[1]))  # stable: the tables complete already first
    for b, ops, steps in plans:
        writer.submit(b, partial(_write, ops) if ops else None, then=partial(indexer.chain, b, steps))
    t = time.perf_counter()
    writer.wait()
    indexer.wait()
    shared["index"] = shared.get("index", 0.0) + time.perf_counter() - t
    for b in list(builds):
        if b.failed is not None:
            builds.remove(b)


class _Workers:
    """Background threads of a rebuild, each with its own read-model connection, running jobs of the
    projections being rebuilt: one transaction per job (`scratch`: not waiting for the disk, see
    `_scratch`). A job that fails fails its projection (recorded in `failures`); the jobs of a
    failed projection are skipped. `then` runs after a job succeeded (in the worker)."""

    def __init__(self, engine: Engine, threads: int, kind: str, failures: dict[str, BaseException], *,
                 scratch: bool = False, queued: int = 0):
        """`queued`: jobs waiting at most before `submit` blocks (0: no limit; the indexers submit
        their own next steps, so their queue must never block them)."""
        self.engine = engine
        self.kind = kind
        self.failures = failures
        self.scratch = scratch
        self.queue: queue.Queue = queue.Queue(queued)
        self.lock = threading.Condition()
        self.pending: dict[_Build | None, int] = {}
        self.busy = 0.0
        self.abandoned = False
        self.threads = [threading.Thread(target=self._run, name=f"rebuild-{kind}-{i}", daemon=True) for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def submit(self, b: _Build, job: Callable[[Connection], None] | None,
               then: Callable[[], None] | None = None) -> None:
        with self.lock:
            self.pending[b] = self.pending.get(b, 0) + 1
            self.pending[None] = self.pending.get(None, 0) + 1
        self.queue.put((b, job, then))

    def chain(self, b: _Build, steps: list[list[Callable[[Connection], None]]]) -> None:
        """Run `steps` in order, the statements of each step at the same time (Beside.index_steps)."""
        if not steps:
            return
        step, rest = steps[0], steps[1:]
        left = [len(step)]
        guard = threading.Lock()

        def next_step() -> None:
            with guard:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self.chain(b, rest)

        for statement in step:
            self.submit(b, statement, then=next_step)

    def _run(self) -> None:
        with self.engine.connect() as conn:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                b, job, then = item
                try:
                    if b.failed is None and not self.abandoned:
                        t = time.perf_counter()
                        try:
                            if job is not None:
                                with conn.begin():
                                    if self.scratch:
                                        _scratch(conn)
                                    job(conn)
                        finally:
                            with self.lock:
                                self.busy += time.perf_counter() - t
                        if then is not None:
                            then()
                except BaseException as exc:  # noqa: BLE001 - isolated: the others go on
                    with self.lock:
                        if b.failed is None:
                            b.failed = exc
                            if not self.abandoned:
                                _failed(b, exc, self.failures)
                finally:
                    with self.lock:
                        self.pending[b] -= 1
                        self.pending[None] -= 1
                        self.lock.notify_all()

    def wait(self, b: _Build | None = None) -> None:
        """Until every job (of `b`, when given) submitted so far has run."""
        with self.lock:
            while self.pending.get(b, 0):
                self.lock.wait()

    def close(self, *, abandon: bool = False) -> None:
        self.abandoned = self.abandoned or abandon
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a rebuild holds hundreds of thousands of rows in
    memory: every collection of the oldest generation walked all of them (it took ~45% of the
    pass's read and fold time, bench/results/rebuild_throughput.md). A rebuild makes next to no
    reference cycles (reference counting frees its garbage); the collector resumes afterwards.
    Process-wide (the collector is), so reference-counted across concurrent rebuilds."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _step(conn: Connection, b: _Build, events: Sequence[Envelope], read: int, failures: dict[str, BaseException],
          *, final: bool) -> bool:
    """Fold one page's events into one projection's new tables, isolated from the others by a savepoint."""
    try:
        if events:
            with conn.begin_nested():
                t = time.perf_counter()
                b.unit.fold(conn, events)
                t2 = time.perf_counter()
                b.unit.flush(conn, final=final)
                b.clock("fold", t2 - t)
                b.clock("write", time.perf_counter() - t2)
        b.applied += read
        return True
    except Exception as exc:  # noqa: BLE001 - isolated: the others go on
        _failed(b, exc, failures)
        return False


def _failed(b: _Build, exc: BaseException, failures: dict[str, BaseException]) -> None:
    log.error("rebuilding projection %s failed; its live tables are unchanged, the others go on",
              b.projection.name, exc_info=exc)
    b.failed = b.failed or exc
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
