"""Reading the application's log in batches, decoded into domain events."""
from __future__ import annotations

from collections.abc import Callable
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

    def read_wanted(self, after: int, limit: int, wanted: Callable[[str], bool]
                    ) -> tuple[list[Envelope], Envelope | None, int]:
        """Like `read`, decoding only the events whose topic is `wanted` (and the last one read, whose
        position and time a rebuild records): (the wanted events, the last event read, how many
        events were read). A rebuild skips decoding what no projection handles (a quarter of a
        typical log: the prompt-name index's events)."""
        notifications = self.app.recorder.select_notifications(after, limit, inclusive_of_start=False)
        if not notifications:
            return [], None, 0
        to_event = self.app.mapper.to_domain_event
        out = [Envelope(n.id, to_event(n)) for n in notifications if wanted(n.topic)]
        final = notifications[-1]
        last = out[-1] if out and out[-1].position == final.id else Envelope(final.id, to_event(final))
        return out, last, len(notifications)

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0
