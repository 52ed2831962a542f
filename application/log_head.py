"""The event log's head as this process last checked it, and what changed since (adr/0020).

`check()` is the one cheap indexed read a request pays to know that what this process caches is
current: `max(notification id)`. When the head moved, the notifications in between are read once
per process (only their originator ids matter; each new event is read once, however many requests
follow) and handed to the listeners (the caches) *before* the new head is published, so a request
whose check returned never sees an entry that an event at or below that head made stale.

This is exact because commits become visible in notification-id order: the Postgres recorder takes
`LOCK TABLE ... IN EXCLUSIVE MODE` on insert (never switch on the library's DB-function inserts) and SQLite has
one writer. So once the head is H, every event with an id <= H is visible and none will appear later.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from uuid import UUID

#: A listener is told the originator ids of the new events (a dict: id -> the position of its last
#: new event), or None: "forget everything" (the first check of the process, or a gap too long to
#: read), and the head they go up to.
Listener = Callable[[Iterable[UUID] | None, int], None]


class LogHead:
    def __init__(self, recorder, *, batch: int = 500, max_gap: int = 20_000,
                 read: Callable[[], int | None] | None = None, probe: Callable[[], int | None] | None = None):
        """`recorder`: the application's recorder (`max_notification_id`, `select_notifications`).
        A head that moved by more than `max_gap` ids clears the listeners instead of reading them.
        `read`: how to read the head (default `recorder.max_notification_id`).
        `probe`: a read of the head that never waits (None when it would: e.g. the embedded SQLite
        store, read on a connection of its own), for `unchanged`."""
        self._recorder = recorder
        self._read = read or recorder.max_notification_id
        self._probe = probe
        self._batch = batch
        self._max_gap = max_gap
        self._listeners: list[Listener] = []
        #: The last head whose events every listener has been told about; None before the first check.
        self._head: int | None = None
        # Concurrent checks share reads: one read at a time; a check is answered by the first read
        # that *started* after the check did (so it sees every commit made before the check began).
        self._turn = threading.Condition()
        self._reading = False
        self._started = 0
        self._finished = 0

    @property
    def position(self) -> int | None:
        """The head as of the last check that returned (never ahead of what listeners know)."""
        return self._head

    @property
    def reader(self) -> Callable[[], int | None]:
        """How the head is read (the composition root may build a read for the event loop from it)."""
        return self._read

    def unchanged(self) -> int | None:
        """The head, when a read that never waits (the probe) finds it where the last check left it:
        the caches are current, as after `check()`. None: call `check()` (it may wait)."""
        if self._probe is None or self._head is None:
            return None
        head = self._probe()
        return head if head is not None and head == self._head else None

    def close(self) -> None:
        for reader in (self._read, self._probe):
            close = getattr(reader, "close", None)
            if close is not None:
                close()

    def subscribe(self, listener: Listener) -> None:
        """Called by the one thread reading the head (keep it short; never call back into `check`)."""
        with self._turn:
            self._listeners.append(listener)

    def check(self) -> int:
        """Read the head (one indexed read, shared with concurrent checks); when it moved, tell the
        listeners what changed, then publish it. Returns a head read after this call began: every
        event at or below it has been handed to the listeners."""
        with self._turn:
            wanted = self._started + 1  # a read in flight now began before this call: not enough
            while self._finished < wanted:
                if not self._reading:
                    self._reading = True
                    self._started += 1
                    mine = self._started
                    break
                self._turn.wait()
            else:
                return self._head  # type: ignore[return-value]
        done = False
        try:
            head = self._advance()
            done = True
            return head
        finally:
            with self._turn:
                self._reading = False
                if done:
                    self._finished = mine
                self._turn.notify_all()

    def _advance(self) -> int:
        """One read of the head; the listeners hear of the events since the last one (one reader at a time)."""
        head = self._read() or 0
        known = self._head
        if known is not None and head <= known:
            return known
        if known is None or head - known > self._max_gap:
            ids: Iterable[UUID] | None = None
        else:
            ids = self._originators(known, head)
        for listener in self._listeners:
            listener(ids, head)
        self._head = head
        return head

    def _originators(self, after: int, head: int) -> dict[UUID, int]:
        """The originator ids of the events with `after` < id <= `head`, read in batches, each with
        the position of its last event there (listeners that only need the ids iterate the keys)."""
        ids: dict[UUID, int] = {}
        start = after + 1
        while start <= head:
            notifications = self._recorder.select_notifications(start, self._batch, stop=head)
            for notification in notifications:
                ids[notification.originator_id] = notification.id
            if len(notifications) < self._batch:
                break
            start = notifications[-1].id + 1
        return ids
