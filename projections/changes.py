"""The change feed: each organisation's events, in log order, under a public vocabulary.

The `type` of a change is a stable, documented name (`prompt.label_moved`, `review.approved`, …)
mapped here explicitly from event classes, never derived from class names: a rename of a class
must not change the feed. Changes about members, keys and the organisation's settings have the
`audit` audience (readable with `audit:read`); the others the `prompts` audience (`prompts:read`).
The feed keeps its own table of prompt names, so every change can say which prompt it is about."""
from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String, Table, func, select

from domain.prompt import Prompt
from domain.release import Release
from domain.review import ReviewRequest
from projections.base import _PLAIN, Projection, json_safe
from projections.batch import Unit
from projections.db import metadata
from projections.events import Envelope
from projections.paging import clamp
from projections.tenancy import rows_of
from projections.vocabulary import DETAILS, PROMPTS, TYPES

changes = Table(
    "rm_changes", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("type", String(48), nullable=False),
    Column("audience", String(8), nullable=False),
    Column("prompt_id", String(36), nullable=True),
    Column("name", String(200), nullable=True),
    Column("version", Integer, nullable=True),
    Column("label", String(64), nullable=True),
    Column("actor", String(80), nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_rm_changes_position", "position"),
)
change_names = Table(
    "rm_change_names", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
)

#: DETAILS names that an event class itself has (a class attribute or property: `hasattr` on an event).
_CLASS_DETAILS: dict[type, frozenset[str]] = {}


#: (event class, its instance's attribute names) -> the DETAILS names it has, in DETAILS order.
_NAMES: dict[tuple, tuple[str, ...]] = {}


def _details(e: Any) -> dict[str, Any]:
    """The event's attributes named in DETAILS, leaving out empty ones (None, "", [])."""
    fields = vars(e)
    cls = type(e)
    shape = (cls, *fields)
    names = _NAMES.get(shape)
    if names is None:
        fixed = _CLASS_DETAILS.get(cls)
        if fixed is None:
            fixed = _CLASS_DETAILS[cls] = frozenset(k for k in DETAILS if hasattr(cls, k))
        names = _NAMES[shape] = tuple(k for k in DETAILS if k in fields or k in fixed)
    out = {}
    for k in names:
        value = getattr(e, k)
        if value is not None and value != "" and value != []:
            out[k] = value if type(value) in _PLAIN else json_safe(value)
    return out


class Changes(Projection):
    name = "changes"
    tables = (changes, change_names)
    appended = (changes,)

    def prepare(self, unit: Unit, batch: Sequence[Envelope]) -> None:
        names = unit[change_names]
        for env in batch:
            if isinstance(env.event, Prompt.Event) and not isinstance(env.event, Prompt.Created):
                names.need((env.org_id, env.target_id))

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, unit: Unit) -> None:
        kind = TYPES.get(type(event))
        if kind is None or not env.org_id:
            return
        row = {"prompt_id": None, "name": None, "version": None, "label": None}
        if isinstance(event, Prompt.Event):
            found = unit[change_names].get((env.org_id, env.target_id))
            row.update(prompt_id=env.target_id, name=found["name"] if found else None,
                       label=getattr(event, "label", None),
                       version=getattr(event, "version", getattr(event, "to_version", None)))
            if isinstance(event, Prompt.Created):
                row["version"] = 1
        elif isinstance(event, ReviewRequest.Event | Release.Event):
            row["label"] = getattr(event, "label", None)
        self._add(unit, env, kind, row)

    @when.register
    def _(self, event: Prompt.Created, env: Envelope, unit: Unit) -> None:
        unit[change_names].insert(dict(org_id=env.org_id, prompt_id=env.target_id, name=event.name))
        self._add(unit, env, TYPES[Prompt.Created], {"prompt_id": env.target_id, "name": event.name, "version": 1,
                                                     "label": None})

    @when.register
    def _(self, event: Prompt.Renamed, env: Envelope, unit: Unit) -> None:
        unit[change_names].update((env.org_id, env.target_id), name=event.to_name)
        self._add(unit, env, TYPES[Prompt.Renamed], {"prompt_id": env.target_id, "name": event.to_name,
                                                     "version": None, "label": None})

    @staticmethod
    def _add(unit: Unit, env: Envelope, kind: tuple[str, str], row: dict[str, Any]) -> None:
        e = env.event
        details = _details(e)
        if isinstance(e, ReviewRequest.Requested | Release.Created):
            details["moves"] = json_safe(e.moves)
        unit[changes].add(dict(org_id=env.org_id, position=env.position, at=env.at, type=kind[0], audience=kind[1],
                               actor=env.actor, details=details, **row))

    # -- queries ----------------------------------------------------------------------------
    def after(self, org_id: str, position: int, *, audit: bool, limit: int = 100) -> list[dict[str, Any]]:
        """The org's changes after `position`, oldest first (audit ones only with `audit`)."""
        query = rows_of(changes, org_id).where(changes.c.position > position)
        if not audit:
            query = query.where(changes.c.audience == PROMPTS)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(changes.c.position).limit(clamp(limit, 1000)))]

    def since(self, position: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Every organisation's changes after `position` (for the process's one poller, which fans
        them out to the subscribers of each organisation)."""
        query = select(changes).where(changes.c.position > position).order_by(changes.c.position).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def last_position(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(changes.c.position))).scalar() or 0
