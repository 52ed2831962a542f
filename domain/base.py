"""Event metadata and the base class of audited aggregates.

Every event of an audited aggregate carries *who* caused it (`actor`, e.g. `user:<id>` or
`api_key:<id>`) and *which request* did (`request_id`), so the audit log is derived from the
stream alone. These are metadata, not decisions: commands do not take them as parameters. The
application runs each command inside `acting(actor, request_id)`, and the base class stamps them
on every event the command triggers. Replaying stored events never consults the context.

The field names are those the events have always had, so events stored by older code load as they
are.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate, ProgrammingError


@dataclass(frozen=True)
class Metadata:
    actor: str
    request_id: str


_current: ContextVar[Metadata | None] = ContextVar("promptforge_event_metadata", default=None)


@contextmanager
def acting(actor: str, request_id: str = "") -> Iterator[Metadata]:
    """Events triggered inside this block are stamped with `actor` and `request_id`."""
    metadata = Metadata(actor, request_id)
    token = _current.set(metadata)
    try:
        yield metadata
    finally:
        _current.reset(token)


def current_metadata() -> Metadata:
    metadata = _current.get()
    if metadata is None:
        raise ProgrammingError("domain commands must run inside acting(actor, request_id)")
    return metadata


def _stamp(kwargs: dict[str, Any]) -> None:
    metadata = current_metadata()
    kwargs["actor"] = metadata.actor  # an apply method may name `actor` (with a default) to read it
    kwargs["request_id"] = metadata.request_id


class AuditedAggregate(Aggregate):
    """An aggregate whose events all carry `actor` and `request_id` (see module docstring)."""

    class Event(Aggregate.Event):
        actor: str
        request_id: str

    class Created(Event, Aggregate.Created):
        pass

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        _stamp(kwargs)
        super().trigger_event(event_class, **kwargs)

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Any:  # noqa: A002
        _stamp(kwargs)
        return super()._create(event_class, id=id, **kwargs)
