"""Prompts this process saved, handed to its next command on them without a store read (adr/0026).

A revision (or a label move, an archive ...) loaded its Prompt through the repository: with the
aggregate cache, one read of the events after the cached version (a round trip to Postgres) and a
deep copy of the aggregate. Here a command that saved a prompt leaves the saved object, stamped with
the log position of its last event; `LogHead` (adr/0020) tells this cache, before it publishes a
head, the last position of every aggregate with new events (`changed`): an entry whose prompt has
an event above its stamp is dropped. So after a head check that began after a request did, an entry
still here is the prompt as of that head: as current as a load from the repository then.

- `take` **removes** the entry: the command owns the object and mutates it (no copy); a command that
  fails leaves nothing behind, and the next one loads from the repository. Two commands on one
  prompt in one process: the second finds nothing and loads.
- `offer` after a successful save: refused if the log head listener has already seen an event of
  that prompt above the stamp (tracked per aggregate, bounded: forgetting one raises a floor).
- Anything committed after the head a command's check read is caught, as before, by the event
  store's optimistic concurrency (the save fails, `@command` retries, the retry loads from the
  repository: the entry was taken).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID


class PromptCache:
    def __init__(self, maxsize: int = 2_000, max_tracked: int = 100_000):
        self.maxsize = maxsize
        self.max_tracked = max_tracked
        self._lock = threading.Lock()
        #: prompt id -> (position of its last event, the saved aggregate)
        self._entries: OrderedDict[UUID, tuple[int, Any]] = OrderedDict()
        #: aggregate id -> the highest position the log head listener told of it (bounded)
        self._seen: OrderedDict[UUID, int] = OrderedDict()
        #: every aggregate forgotten from `_seen` had no event above this (and a clear sets it)
        self._floor = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, prompt_id: UUID) -> Any | None:
        """The cached prompt, removed (the caller owns it), or None."""
        with self._lock:
            entry = self._entries.pop(prompt_id, None)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            return entry[1]

    def offer(self, prompt: Any, position: int | None) -> None:
        """Keep `prompt` as saved, its last event at `position` (the caller never touches it again)."""
        if position is None or getattr(prompt, "pending_events", None):
            return
        with self._lock:
            if position < self._floor or self._seen.get(prompt.id, 0) > position:
                return  # the listener already told of a later event (or may have: the floor)
            self._entries[prompt.id] = (position, prompt)
            self._entries.move_to_end(prompt.id)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def changed(self, ids: Iterable[UUID] | None, head: int) -> None:
        """`LogHead` listener: `ids` maps each aggregate with new events to its last position (an
        iterable of ids without positions counts them all at `head`); None: forget everything."""
        with self._lock:
            if ids is None:
                self._entries.clear()
                self._seen.clear()
                self._floor = max(self._floor, head)
                return
            positions = ids if isinstance(ids, Mapping) else dict.fromkeys(ids, head)
            entries, seen = self._entries, self._seen
            for aggregate_id, position in positions.items():
                if seen.get(aggregate_id, 0) < position:
                    seen[aggregate_id] = position
                    seen.move_to_end(aggregate_id)
                entry = entries.get(aggregate_id)
                if entry is not None and entry[0] < position:
                    del entries[aggregate_id]
            while len(seen) > self.max_tracked:
                _, forgotten = seen.popitem(last=False)
                self._floor = max(self._floor, forgotten)
