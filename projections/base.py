"""The projection contract: fold one event into tables, inside a transaction given to it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Table, delete

from projections.events import Envelope

Handler = Callable[[Connection, Envelope], None]


class Projection:
    """Subclasses declare `name`, `tables` and `handlers` (event class -> method name).

    Handlers must be deterministic functions of the event (no clock, no randomness), so a
    rebuild from zero reproduces the live tables row for row."""

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]
    handlers: ClassVar[dict[type, str]] = {}

    def __init__(self, engine: Engine):
        self.engine = engine

    def apply(self, conn: Connection, envelope: Envelope) -> None:
        for cls in type(envelope.event).__mro__:
            method = self.handlers.get(cls)
            if method is not None:
                getattr(self, method)(conn, envelope)
                return
        self.fallback(conn, envelope)

    def fallback(self, conn: Connection, envelope: Envelope) -> None:
        """Events this projection does not care about."""

    def reset(self, conn: Connection) -> None:
        """Drop every row (children first) so the projection can be replayed from zero."""
        for table in reversed(self.tables):
            conn.execute(delete(table))


def json_safe(value: Any) -> Any:
    """Event attribute values in a form JSON columns accept (UUIDs as strings)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
