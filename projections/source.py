"""Reading the application's log in batches, decoded into domain events."""
from __future__ import annotations

from typing import Protocol

from eventsourcing.application import Application

from projections.events import Envelope


class EventSource(Protocol):
    def read(self, after: int, limit: int) -> list[Envelope]: ...

    def head(self) -> int: ...


class ApplicationEventSource:
    """Uses the recorder directly: `notification_log.select()` refuses limits above its
    section size (10), far too small for catch-up batches."""

    def __init__(self, app: Application):
        self.app = app

    def read(self, after: int, limit: int) -> list[Envelope]:
        notifications = self.app.recorder.select_notifications(after, limit, inclusive_of_start=False)
        to_event = self.app.mapper.to_domain_event
        return [Envelope(n.id, to_event(n)) for n in notifications]

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0
