"""Query results kept per process, each while nothing it depends on has changed (adr/0020).

- `ReadModelPosition`: a read model's position (its tracking row: one primary-key read).
- `DependencyCache`: a bounded LRU of answers, each tagged with the read model's position it was
  computed at and the aggregates it was computed from (a prompt and the prompts it includes). The
  log head's listener (application.log_head) tells it which aggregates changed, up to which head,
  before a request's head check returns: an answer is served while none of its aggregates changed
  after the position it was computed at. Never a TTL; a write to one prompt leaves every answer that
  does not read it in place.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import Engine

from projections import tracking


class ReadModelPosition:
    def __init__(self, engine: Engine, name: str):
        self.engine = engine
        self.name = name

    def read(self) -> int:
        """The position, from the tracking row."""
        with self.engine.connect() as conn:
            return tracking.read(conn, self.name).position


class DependencyCache:
    """Answers valid while their aggregates have not changed since they were computed.

    `changed(ids, head)` (a LogHead listener): events of these aggregates exist at or below `head`
    (`ids=None`: of any aggregate). An answer computed at read-model position P from aggregates D is
    served while every aggregate of D last changed at or below P. The heads are upper bounds of the
    events' positions, so an answer may be dropped early, never served late: a request's head check
    has told this cache of every event at or below its head before it looks anything up. At most
    `max_tracked` aggregates are remembered; forgetting one raises a floor that every answer must be
    computed at or above (again: early, never late)."""

    def __init__(self, maxsize: int = 10_000, max_tracked: int = 100_000):
        self.maxsize = maxsize
        self.max_tracked = max_tracked
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[int, frozenset[UUID], Any]] = OrderedDict()
        #: aggregate id -> a head at or above its latest event (LRU by update)
        self._changed: OrderedDict[UUID, int] = OrderedDict()
        #: every aggregate not in `_changed` last changed at or below this
        self._floor = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def changed(self, ids: Iterable[UUID] | None, head: int) -> None:
        with self._lock:
            if ids is None:
                self._changed.clear()
                self._floor = max(self._floor, head)
                return
            for aggregate_id in ids:
                self._changed[aggregate_id] = head
                self._changed.move_to_end(aggregate_id)
            while len(self._changed) > self.max_tracked:
                _, forgotten = self._changed.popitem(last=False)
                self._floor = max(self._floor, forgotten)

    def _fresh(self, position: int, depends_on: frozenset[UUID]) -> bool:
        if position < self._floor:
            return False
        changed = self._changed
        return all(changed.get(aggregate_id, 0) <= position for aggregate_id in depends_on)

    def get(self, key: Hashable) -> Any | None:
        """The value kept for `key` if none of its aggregates changed since, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not self._fresh(entry[0], entry[1]):
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[2]

    def put(self, key: Hashable, position: int, depends_on: Iterable[UUID], value: Any) -> None:
        """Keep `value`, computed from the read model at `position` (read before computing it and found
        unchanged after) from the state of the aggregates `depends_on`."""
        depends_on = frozenset(depends_on)
        with self._lock:
            if not self._fresh(position, depends_on):  # already known to be stale
                return
            self._entries[key] = (position, depends_on, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
