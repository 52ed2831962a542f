"""One poller per process fans the change feed out to every waiting subscriber.

Idle subscribers (SSE streams, long polls) cost nothing: they wait on an asyncio queue. One thread
per process follows the `changes` read model: it checks the projection's tracking position (one
primary-key read) every `poll_seconds` (or as soon as an in-process projection run reports progress),
reads the new changes of every organisation once, and hands each to the subscribers of its
organisation on their event loop."""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Subscriber:
    org_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def offer(self, row: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, row)


class ChangeHub:
    def __init__(self, read_since: Callable[[int, int], list[dict[str, Any]]], head: Callable[[], int],
                 progress: threading.Condition | None = None, poll_seconds: float = 0.05):
        """`read_since(position, limit)`: every organisation's changes after a position;
        `head()`: the position the feed has reached (the projection's tracking position)."""
        self._read_since = read_since
        self._head = head
        self._progress = progress
        self.poll_seconds = poll_seconds
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._position: int | None = None

    # -- subscribers ------------------------------------------------------------------------
    def subscribe(self, org_id: str) -> Subscriber:
        subscriber = Subscriber(str(org_id), asyncio.get_running_loop())
        with self._lock:
            self._subscribers.setdefault(subscriber.org_id, set()).add(subscriber)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="change-feed-hub", daemon=True)
                self._thread.start()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            subscribers = self._subscribers.get(subscriber.org_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[subscriber.org_id]

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subscribers.values())

    # -- the poller -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except SQLAlchemyError as exc:  # the database may be briefly away: try again
                log.warning("change feed poll failed (%s)", type(exc).__name__)
                self._stop.wait(1.0)
            if self._progress is not None:
                with self._progress:
                    self._progress.wait(self.poll_seconds)
            else:
                self._stop.wait(self.poll_seconds)

    def _poll(self) -> None:
        head = self._head()
        if self._position is None:
            self._position = head
            return
        while self._position < head:
            rows = self._read_since(self._position, 1000)
            if not rows:
                self._position = head
                break
            with self._lock:
                targets = {org: list(subs) for org, subs in self._subscribers.items()}
            for row in rows:
                for subscriber in targets.get(row["org_id"], ()):
                    subscriber.offer(row)
            self._position = rows[-1]["position"]

    def close(self) -> None:
        self._stop.set()
        if self._progress is not None:
            with self._progress:
                self._progress.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
