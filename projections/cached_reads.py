"""Query results kept per process, valid while the read model they came from has not moved (adr/0020).

- `ReadModelPosition`: a read model's position (its tracking row: one primary-key read), skipped
  when the request's checked log head equals the position last read, since a read model never
  passes the head: with the head unchanged, it is still there.
- `PositionCache`: a bounded LRU whose entries are tagged with the position they were computed at
  and answer only a lookup at that same position. Never a TTL: anything the read model folds
  (in any organisation; includes make one prompt's answer depend on others) invalidates all of it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from sqlalchemy import Engine

from projections import tracking


class ReadModelPosition:
    def __init__(self, engine: Engine, name: str):
        self.engine = engine
        self.name = name
        #: The position last read (None: not read yet).
        self._known: int | None = None

    def known(self, head: int | None) -> int | None:
        """The read model's position for a request whose log-head check returned `head`, without
        reading anything: the position last read when it equals `head`, else None (call `read`)."""
        known = self._known
        return known if head is not None and known == head else None

    def read(self) -> int:
        """The position, from the tracking row."""
        with self.engine.connect() as conn:
            position = tracking.read(conn, self.name).position
        self._known = position
        return position


class PositionCache:
    def __init__(self, maxsize: int = 10_000):
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[int, Any]] = OrderedDict()
        #: The position of the entries held (the cache holds one position's answers at a time).
        self._position: int | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, position: int) -> Any | None:
        """The value computed for `key` at exactly `position`, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != position:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Hashable, position: int, value: Any) -> None:
        """Keep `value`, computed from the read model at `position` (read before computing it and
        found unchanged after). A new position drops every entry of the old one."""
        with self._lock:
            if position != self._position:
                self._entries.clear()
                self._position = position
            self._entries[key] = (position, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
