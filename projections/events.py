"""Helpers to read the attributes every event carries (position, org, actor, time)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.organisation import Organisation


@dataclass(frozen=True)
class Envelope:
    """A domain event with its position in the application's log."""

    position: int
    event: Any

    @property
    def org_id(self) -> str:
        """Tenant of the event; '' for account-level events (users, sessions, indexes)."""
        org = getattr(self.event, "org_id", None)
        if org is None and isinstance(self.event, Organisation.Event):
            org = self.event.originator_id
        return str(org) if org is not None else ""

    @property
    def target_id(self) -> str:
        return str(self.event.originator_id)

    @property
    def actor(self) -> str:
        return getattr(self.event, "actor", "") or "system"

    @property
    def request_id(self) -> str:
        return getattr(self.event, "request_id", "") or ""

    @property
    def at(self) -> datetime:
        return self.event.timestamp

