"""The projection contract: fold events into tables, inside a transaction given to it.

Handlers are `functools.singledispatchmethod`s keyed by event class:

    class Catalogue(Projection):
        @singledispatchmethod
        def when(self, event, env, conn): ...          # events it ignores

        @when.register
        def _(self, event: Prompt.Created, env, conn): ...

Handlers must be deterministic functions of the event (no clock, no randomness), so a rebuild
from zero reproduces the live tables row for row. A projection reads and writes only its own
`tables`, never another projection's (each can lag, fail or rebuild on its own).
`schema_version` names the layout of the tables and the fold: change either, bump it, and the tables are
dropped, recreated and replayed at the next start (tracking.sync_schema)."""
from __future__ import annotations

from functools import singledispatchmethod
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Table, delete, insert

from projections.events import Envelope


class Projection:
    name: ClassVar[str]
    schema_version: ClassVar[int] = 1
    tables: ClassVar[tuple[Table, ...]]

    def __init__(self, engine: Engine):
        self.engine = engine

    def fold(self, conn: Connection, batch: list[Envelope]) -> None:
        """Fold a batch of events, in log order, inside the catch-up transaction."""
        for env in batch:
            self.when(env.event, env, conn)

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, conn: Connection) -> None:
        """Events this projection does not care about."""

    def reset(self, conn: Connection) -> None:
        """Drop every row (children first) so the projection can be replayed from zero."""
        for table in reversed(self.tables):
            conn.execute(delete(table))


class AppendOnlyProjection(Projection):
    """A projection that only ever inserts rows into `table`: its handlers (`row`) *return* the row
    of an event, and a batch is written with one executemany. One statement per event capped these
    projections at ~5.7k rows/s on Postgres; batched inserts reach ~55k
    (bench/results/rebuild_throughput.md)."""

    table: ClassVar[Table]

    def fold(self, conn: Connection, batch: list[Envelope]) -> None:
        rows = [row for env in batch if (row := self.row(env.event, env)) is not None]
        if rows:
            conn.execute(insert(self.table), rows)

    @singledispatchmethod
    def row(self, event: Any, env: Envelope) -> dict[str, Any] | None:
        """The row an event adds (None: the event adds nothing)."""
        return None


def json_safe(value: Any) -> Any:
    """Event attribute values in a form JSON columns accept (UUIDs as strings)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
