"""Per-process cache of the aggregates that authentication and authorisation read (adr/0020).

API keys, organisations, sessions and users, kept current by `LogHead`: every event's originator id
evicts that aggregate here (`evict`), before the head that includes it is published. So after a
request's `LogHead.check()`, whatever `get` returns reflects at least every event up to that head:
a revocation, removal or demotion committed by any process before the request applies to it.

What it hands out is shared between threads and **read-only**: authentication, authorisation and
queries only. Commands load the aggregates they change through the repository, as before.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID


class NotCached(LookupError):
    """`peek` found no entry: the caller must load (off the event loop)."""


class _Load:
    """A load in flight; marked stale when an event for its aggregate is seen meanwhile."""

    __slots__ = ("stale",)

    def __init__(self) -> None:
        self.stale = False


class AccessCache:
    def __init__(self, load: Callable[[UUID], Any], maxsize: int = 10_000):
        """`load(id)`: the aggregate from the event store (raises what the repository raises)."""
        self._load = load
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._entries: OrderedDict[UUID, Any] = OrderedDict()
        self._loading: dict[UUID, list[_Load]] = {}
        self.hits = 0
        self.misses = 0
        #: What readers derive from the objects handed out here and remember by their identity
        #: (application.request_access: verified keys, grants): shared by every reader of this cache.
        #: Such a memo stays correct without being told of events: an event replaces the object.
        self.derived: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self._entries

    def peek(self, aggregate_id: UUID) -> Any:
        """The cached aggregate, or NotCached: never reads the store (callers that must not block)."""
        with self._lock:
            aggregate = self._entries.get(aggregate_id)
            if aggregate is None:
                raise NotCached(aggregate_id)
            self._entries.move_to_end(aggregate_id)
            self.hits += 1
            return aggregate

    def get(self, aggregate_id: UUID) -> Any:
        """The aggregate (shared: never mutate it), from the cache or loaded and cached."""
        with self._lock:
            aggregate = self._entries.get(aggregate_id)
            if aggregate is not None:
                self._entries.move_to_end(aggregate_id)
                self.hits += 1
                return aggregate
            self.misses += 1
            ticket = _Load()
            self._loading.setdefault(aggregate_id, []).append(ticket)
        try:
            aggregate = self._load(aggregate_id)
        except BaseException:
            with self._lock:
                self._done(aggregate_id, ticket)
            raise
        with self._lock:
            self._done(aggregate_id, ticket)
            # An event for this aggregate seen while it loaded may be newer than what was read:
            # hand the load to this caller (it is at least as recent as its check) but keep nothing.
            if not ticket.stale:
                self._entries[aggregate_id] = aggregate
                self._entries.move_to_end(aggregate_id)
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
        return aggregate

    def _done(self, aggregate_id: UUID, ticket: _Load) -> None:
        tickets = self._loading[aggregate_id]
        tickets.remove(ticket)
        if not tickets:
            del self._loading[aggregate_id]

    def evict(self, ids: Iterable[UUID] | None, head: int | None = None) -> None:
        """`LogHead` listener: forget these aggregates (None: all of them); `head` is not needed."""
        with self._lock:
            if ids is None:
                self._entries.clear()
                for tickets in self._loading.values():
                    for ticket in tickets:
                        ticket.stale = True
                return
            for aggregate_id in ids:
                self._entries.pop(aggregate_id, None)
                for ticket in self._loading.get(aggregate_id, ()):
                    ticket.stale = True
