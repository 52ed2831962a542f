"""Serialising commands that write the same hot aggregate, instead of letting them collide.

Every prompt creation, key issue and membership change appends to its Organisation's stream (the
plan's counters live there). Concurrent ones used to collide in the event store and retry with
backoff, up to 409 CONCURRENT_MODIFICATION under load. Commands marked `@command(serialise=...)`
now queue on a lock per organisation instead: a process-local lock (so one thread per process
waits), then whatever cross-process lock the composition root adds (a Postgres advisory lock or a
file lock beside SQLite: projections.writer_lock). The event store's optimistic concurrency stays
the guarantee; the lock only makes collisions rare (adr/0019)."""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext


class KeyedLocks:
    """One re-entrant lock per key, created on demand and dropped when nobody holds or waits."""

    def __init__(self, across_processes: Callable[[str], AbstractContextManager] | None = None):
        self._locks: weakref.WeakValueDictionary[str, threading.RLock] = weakref.WeakValueDictionary()
        self._guard = threading.Lock()
        self._across = across_processes
        self._held = threading.local()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = threading.RLock()
                self._locks[key] = lock
        held: set[str] = self._held.__dict__.setdefault("keys", set())
        with lock:
            if key in held:  # re-entered by a nested command: the outer one holds both locks
                yield
                return
            held.add(key)
            try:
                with self._across(key) if self._across is not None else nullcontext():
                    yield
            finally:
                held.discard(key)
