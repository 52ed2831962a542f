"""The projection contract: fold batches of events into tables, inside a transaction given to it.

A batch is folded in memory and written back with a few set-based statements (projections.batch):
`prepare` declares the rows the batch touches (loaded in one query per table), handlers
(`functools.singledispatchmethod`s keyed by event class) fold each event into the `Unit`'s rows,
and the unit writes what changed:

    class Catalogue(Projection):
        def prepare(self, unit, batch): ...           # unit[prompts].need(key) for each event

        @singledispatchmethod
        def when(self, event, env, unit): ...          # events it ignores

        @when.register
        def _(self, event: Prompt.Created, env, unit):
            unit[prompts].insert({...})

Handlers must be deterministic functions of the event (no clock, no randomness), so a rebuild
from zero reproduces the live tables row for row, whatever the batch sizes. A projection reads and
writes only its own `tables`, never another projection's (each can lag, fail or rebuild on its
own). The same handlers fold the live catch-up (into the live tables) and a rebuild (into tables
built beside them, projections.beside). `schema_version` names the layout of the tables and the
fold: change either, bump it, and the tables are dropped, recreated and replayed at the next start
(catchup.sync_schema)."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import singledispatchmethod
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Table, delete

from projections.batch import MAX_ROWS_IN_MEMORY, Unit
from projections.events import Envelope


def _noop(*_args: Any) -> None:
    pass


def _dispatch(owner: type, attribute: str, cls: type) -> Callable[..., Any] | None:
    """The function a singledispatchmethod of `owner` runs for events of class `cls` (looked up once:
    `singledispatchmethod.__get__` builds a new wrapper on every access, ~2 µs per event), or None
    when that function does nothing (its body is `pass`, a docstring or `return None`)."""
    method = inspect.getattr_static(owner, attribute)
    dispatcher = getattr(method, "dispatcher", None)
    fn = dispatcher.dispatch(cls) if dispatcher is not None else method
    code = getattr(fn, "__code__", None)
    if code is not None and code.co_code == _noop.__code__.co_code and code.co_consts[-1:] in ((None,), ()):
        return None
    return fn


class Projection:
    #: The singledispatchmethod holding the handlers (`row` for append-only projections).
    handler_attribute: ClassVar[str] = "when"
    name: ClassVar[str]
    schema_version: ClassVar[int] = 1
    tables: ClassVar[tuple[Table, ...]]
    #: Tables whose rows a fold only ever adds (never reads back, updates or deletes).
    appended: tuple[Table, ...] = ()
    #: table -> key columns by which its rows are also enumerated together (a prompt's tags).
    groups: ClassVar[Mapping[Table, Sequence[str]]] = {}
    #: table -> JSON columns the fold leaves unset on insert (SQL NULL rather than JSON null).
    sql_null: ClassVar[Mapping[Table, Sequence[str]]] = {}

    def __init__(self, engine: Engine):
        self.engine = engine
        self._handlers: dict[type, Callable[..., Any] | None] = {}

    def unit(self, target: Mapping[Table, Table] | None = None, *, fresh: bool = False,
             max_rows: int = MAX_ROWS_IN_MEMORY) -> Unit:
        """A fold into the live tables (default) or into `target` (live table -> table built beside it;
        `fresh`: they started empty and only this unit writes them)."""
        return Unit(self, target, fresh=fresh, max_rows=max_rows)

    def fold(self, conn: Connection, batch: list[Envelope]) -> None:
        """Fold a batch of events, in log order, inside the catch-up transaction."""
        unit = self.unit()
        unit.fold(conn, batch)
        unit.flush(conn)

    def handles(self, cls: type) -> bool:
        """Whether an event of class `cls` can change this projection's tables: False when its handler
        does nothing. A rebuild neither decodes nor hands a projection the events it does not handle
        (`prepare` only declares what handled events touch). A projection with its own `apply` handles
        everything."""
        if type(self).apply not in (Projection.apply, AppendOnlyProjection.apply):
            return True
        try:
            handler = self._handlers[cls]
        except KeyError:
            handler = self._handlers[cls] = _dispatch(type(self), self.handler_attribute, cls)
        return handler is not None

    def prepare(self, unit: Unit, batch: Sequence[Envelope]) -> None:
        """Declare the rows `batch` touches (`unit[table].need(key)` / `.need_group(key)`), loaded in
        one query per table before the handlers run. Rows not declared are loaded when first used."""

    def apply(self, batch: Sequence[Envelope], unit: Unit) -> None:
        """Run the handlers of `batch`, in order."""
        handlers = self._handlers
        for env in batch:
            event = env.event
            cls = event.__class__
            try:
                handler = handlers[cls]
            except KeyError:
                handler = handlers[cls] = _dispatch(type(self), self.handler_attribute, cls)
            if handler is not None:
                handler(self, event, env, unit)

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, unit: Unit) -> None:
        """Events this projection does not care about."""

    def reset(self, conn: Connection) -> None:
        """Drop every row (children first) so the projection can be replayed from zero."""
        for table in reversed(self.tables):
            conn.execute(delete(table))


class AppendOnlyProjection(Projection):
    """A projection that only ever inserts rows into `table`: its handlers (`row`) *return* the row
    of an event, and a batch is written with one executemany (COPY in a rebuild). One statement per
    event capped these projections at ~5.7k rows/s on Postgres; batched inserts reach ~55k
    (bench/results/rebuild_throughput.md)."""

    table: ClassVar[Table]
    handler_attribute: ClassVar[str] = "row"

    @property
    def appended(self) -> tuple[Table, ...]:  # type: ignore[override]
        return (self.table,)

    def apply(self, batch: Sequence[Envelope], unit: Unit) -> None:
        handlers = self._handlers
        add = unit.states[self.table].add
        for env in batch:
            event = env.event
            cls = event.__class__
            try:
                handler = handlers[cls]
            except KeyError:
                handler = handlers[cls] = _dispatch(type(self), self.handler_attribute, cls)
            if handler is not None:
                row = handler(self, event, env)
                if row is not None:
                    add(row)

    @singledispatchmethod
    def row(self, event: Any, env: Envelope) -> dict[str, Any] | None:
        """The row an event adds (None: the event adds nothing)."""
        return None


_PLAIN = frozenset({str, int, float, bool, type(None)})


def json_safe(value: Any) -> Any:
    """Event attribute values in a form JSON columns accept (UUIDs as strings)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dict):
        return {str(k): v if type(v) in _PLAIN else json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [v if type(v) in _PLAIN else json_safe(v) for v in value]
    if isinstance(value, (str, int, float)):  # subclasses (bool is an int)
        return value
    return str(value)
