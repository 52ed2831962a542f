"""Given / when / then helpers for the domain unit tests.

* `given(*events)` folds the events that earlier commands produced onto a fresh aggregate (via the
  library's own `project_aggregate`), so every test starts from state that was *replayed*, exactly as
  the application loads it from the event store.
* `then(aggregate)` drains the aggregate's pending events into `(event name, business attributes)`
  pairs. The attributes are everything the event carries except the library's envelope fields, so an
  exact `==` comparison also catches unexpected extra fields (a leaked secret, a missing `org_id`).
* `refused(aggregate, command, kind=..., code=...)` runs a command that must be refused and checks the
  error kind, its stable code, optionally its details, and that NO event was emitted.
* `by(actor, request)` is the event metadata a command runs under: domain commands take no actor or
  request id, they must run inside `domain.base.acting(...)` and every event they trigger is stamped
  with both. `with by(ACTOR, REQUEST): prompt.archive()`; `by(...)` also wraps a callable
  (`by(ACTOR, "r1")(lambda p: p.archive())`), being a `contextlib` context manager.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate

from domain.base import acting
from domain.errors import DomainError

ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})

ACTOR = "user:alice"
REQUEST = "req-1"


def by(actor: str = ACTOR, request: str = REQUEST):
    """Commands run inside are stamped with `actor` and `request` (the request id)."""
    return acting(actor, request)


def history(aggregate: Aggregate) -> list[Any]:
    """The events an aggregate built by commands has pending (and clears them)."""
    return list(aggregate.collect_events())


def given(*events: Any) -> Any:
    """A fresh aggregate folded from `events` (single events or lists of them, in order)."""
    flat: list[Any] = []
    for item in events:
        if isinstance(item, (list, tuple)):
            flat.extend(item)
        else:
            flat.append(item)
    assert flat, "given() needs at least the creating event"
    aggregate = project_aggregate(None, flat)
    assert aggregate is not None
    assert aggregate.version == len(flat)
    assert list(aggregate.collect_events()) == [], "a replayed aggregate has nothing pending"
    return aggregate


def attrs(event: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(event).items() if k not in ENVELOPE}


def then(aggregate: Aggregate) -> list[tuple[str, dict[str, Any]]]:
    """Pending events as (class name, business attributes); the pending list is cleared."""
    events = list(aggregate.collect_events())
    for event in events:
        assert event.originator_id == aggregate.id
    versions = [e.originator_version for e in events]
    assert versions == list(range(aggregate.version - len(events) + 1, aggregate.version + 1))
    return [(type(e).__name__, attrs(e)) for e in events]


def then_names(aggregate: Aggregate) -> list[str]:
    return [name for name, _ in then(aggregate)]


def refused(
    aggregate: Aggregate | None,
    command: Callable[[], Any],
    *,
    kind: type[DomainError],
    code: str,
    details: dict[str, Any] | None = None,
) -> DomainError:
    """Run `command`, expect `kind` with `code` (and exactly `details` if given), and no new event.

    The command runs as ACTOR / REQUEST: a refused command emits nothing, so whose metadata it ran
    under cannot show (the domain decides on explicit arguments such as `by_role`, never on the actor)."""
    version_before = aggregate.version if aggregate is not None else None
    with pytest.raises(kind) as info, by(ACTOR, REQUEST):
        command()
    error = info.value
    assert error.code == code, f"expected {code}, got {error.code}: {error.message}"
    if details is not None:
        assert error.details == details
    if aggregate is not None:
        assert then(aggregate) == [], "a refused command must not emit events"
        assert aggregate.version == version_before
    return error


def replay(events: Iterable[Any]) -> Any:
    return project_aggregate(None, list(events))
