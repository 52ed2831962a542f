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
from contextlib import AbstractContextManager, contextmanager
from typing import Any


class KeyedLocks:
    """One re-entrant lock per key, created on demand and dropped when nobody holds or waits."""

    def __init__(self, across_processes: Callable[[str], AbstractContextManager] | None = None):
        self._locks: weakref.WeakValueDictionary[str, threading.RLock] = weakref.WeakValueDictionary()
        self._guard = threading.Lock()
        self._across = across_processes
        self._held = threading.local()

    @contextmanager
    def hold(self, key: str, read_after: Any = None) -> Iterator[Any]:
        """Hold the key's lock. `read_after`: passed to the cross-process lock, which may read with
        its grant (interfaces.command_locks); what it read is yielded, None when nothing was (no
        cross-process lock, or the key re-entered by the thread that holds it)."""
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = threading.RLock()
                self._locks[key] = lock
        held: set[str] = self._held.__dict__.setdefault("keys", set())
        with lock:
            if key in held:  # re-entered by a nested command: the outer one holds both locks
                yield None
                return
            held.add(key)
            try:
                if self._across is None:
                    yield None
                elif read_after is None:
                    with self._across(key):
                        yield None
                else:
                    with self._across(key, read_after=read_after) as read:
                        yield read
            finally:
                held.discard(key)
