"""A lock that lets one writer at a time work on an external store (the vector index).

The vector index is not transactional with the read-model database, so two runners folding the
same batch could each upsert, and a slow runner's stale payload could land last. Vector writers
therefore hold this lock for a whole batch (read, embed, upsert, claim):
- Postgres: a session-level advisory lock on a dedicated connection; it dies with the connection,
  so a crashed holder never leaves it taken.
- SQLite: an exclusive `flock` on a file beside the database (released when the holder's file
  descriptor closes, also on a crash); an in-memory database uses a process-local lock.
A runner that does not get the lock skips the round: the holder is doing the work.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name`."""
    return int.from_bytes(hashlib.sha256(f"promptforge:{name}".encode()).digest()[:8], "big", signed=True)


class WriterLock:
    def __init__(self, engine: Engine, name: str):
        self.engine = engine
        self.name = name

    @contextmanager
    def hold(self, wait: bool = False) -> Iterator[bool]:
        """Yields True when held (until the block ends), False when another writer holds it.
        With `wait`, blocks until it is free (a reset must not be skipped)."""
        if self.engine.dialect.name == "postgresql":
            with self._postgres(wait) as held:
                yield held
        else:
            with self._sqlite(wait) as held:
                yield held

    @contextmanager
    def _postgres(self, wait: bool) -> Iterator[bool]:
        key = advisory_key(self.name)
        with self.engine.connect() as conn:
            if wait:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                held = True
            else:
                held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    @contextmanager
    def _sqlite(self, wait: bool) -> Iterator[bool]:
        database = self.engine.url.database
        if not database or database == ":memory:":
            with _local_guard:
                lock = _local_locks.setdefault(f"{id(self.engine)}:{self.name}", threading.Lock())
            held = lock.acquire(blocking=wait)
            try:
                yield held
            finally:
                if held:
                    lock.release()
            return
        fd = os.open(f"{database}.{self.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                held = False
            yield held
        finally:
            os.close(fd)  # releases the flock
