"""Folding a batch of events in memory and writing it back with set-based statements.

One statement per event capped the read models at ~1,300 events/s on Postgres (rebuild `--all`),
and on SQLite most of the time went into building a new SQLAlchemy statement for every row
(bench/results/rebuild_throughput.md, adr/0020). A `Unit` instead folds a whole batch into Python
dicts and writes the difference in a few statements:

1. `prepare`: the projection says which rows the batch touches (`need`, `need_group`); they are
   loaded with one query per table;
2. the handlers fold the events, in log order, into those rows (`get`, `insert`, `update`,
   `delete`, `group`): the same semantics as the SQL statements they replace (an update or delete
   of a missing row does nothing, an insert of a present row fails the batch);
3. `flush`: rows that changed are written with prebuilt statements, one executemany per table and
   kind (delete, update, insert), or COPY into a table being built beside the live one.

A key the batch did not declare is loaded on first use (correct, one query more). Handlers treat
rows as immutable values: `update` replaces a row, it never changes one in place.

The same unit serves the live catch-up (a batch of 500, against the live tables, forgotten after
the batch) and the rebuild (`fresh`: the target tables started empty and only this unit writes
them, so every row is known without loading anything, and current-state rows stay in memory until
the end: each is written once, by COPY)."""
from __future__ import annotations

import json
import json.encoder
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON, BigInteger, Boolean, Connection, DateTime, Integer, SmallInteger, String, Table, and_, bindparam, delete,
    insert, select, tuple_, update,
)
from sqlalchemy.sql.elements import Null

if TYPE_CHECKING:  # pragma: no cover
    from projections.base import Projection
    from projections.events import Envelope

#: Keys per load query (bound parameters stay far below SQLite's and Postgres' limits).
LOAD_CHUNK = 500
#: Rows a fresh unit keeps in memory before writing them out and forgetting them (then it loads
#: what later batches touch, like the live path).
MAX_ROWS_IN_MEMORY = 250_000


class DuplicateRow(Exception):
    """An insert of a row whose key is present (the database would raise an IntegrityError)."""


def _tuple_getter(positions: Sequence[int]):
    """key -> the tuple of its items at `positions` (None when there are none): a slice when they
    are a prefix of the key (a prompt's tags are grouped by the first two), else an itemgetter."""
    if not positions:
        return None
    if list(positions) == list(range(len(positions))):
        n = len(positions)
        return lambda key: key[:n]
    if len(positions) == 1:
        i = positions[0]
        return lambda key: (key[i],)
    return itemgetter(*positions)


def _key_getter(columns: Sequence[str]):
    if len(columns) == 1:
        name = columns[0]
        return lambda row: (row[name],)
    return itemgetter(*columns)


class Keyed:
    """The rows of one table a batch touches, keyed by primary key (a tuple in the primary key's
    column order). `group`: columns of the key by which rows are also enumerated (a prompt's tags),
    loaded and deleted together."""

    def __init__(self, unit: Unit, table: Table, target: Table, group: Sequence[str] = (),
                 sql_null: Sequence[str] = ()):
        self.unit = unit
        self.table = table
        self.target = target
        self.key_columns = tuple(c.name for c in table.primary_key.columns)
        self.columns = tuple(c.name for c in table.columns)
        self.key_of = _key_getter(self.key_columns)
        self.group_columns = tuple(group)
        if not set(self.group_columns) <= set(self.key_columns):
            raise ValueError(f"{table.name}: group columns must be key columns")
        positions = [self.key_columns.index(c) for c in self.group_columns]
        self.group_of_key = _tuple_getter(positions)
        #: JSON columns the per-event statements left out of their inserts (SQL NULL, not JSON null).
        self.sql_null = frozenset(sql_null)
        self._rows: dict[tuple, dict[str, Any]] = {}  # present rows, as folded so far
        self._stored: dict[tuple, dict[str, Any] | None] = {}  # what the target holds (None: absent)
        self._dirty: dict[tuple, None] = {}  # keys changed since the last flush, in order
        self._by_group: dict[tuple, dict[tuple, None]] = {}  # group -> keys present
        self._known_groups: set[tuple] = set()
        self._want_keys: dict[tuple, None] = {}
        self._want_groups: dict[tuple, None] = {}
        self.complete = unit.fresh

    # -- what a batch touches --------------------------------------------------------------
    def need(self, key: tuple) -> None:
        if not self.complete and key not in self._stored:
            self._want_keys[key] = None

    def need_group(self, group: tuple) -> None:
        if not self.complete and group not in self._known_groups:
            self._want_groups[group] = None

    def load(self, conn: Connection) -> None:
        keys = [k for k in self._want_keys if k not in self._stored]
        groups = [g for g in self._want_groups if g not in self._known_groups]
        self._want_keys, self._want_groups = {}, {}
        t = self.target
        for i in range(0, len(keys), LOAD_CHUNK):
            chunk = keys[i:i + LOAD_CHUNK]
            self._merge(conn.execute(select(t).where(_in(t, self.key_columns, chunk))))
            for key in chunk:
                self._stored.setdefault(key, None)
        for i in range(0, len(groups), LOAD_CHUNK):
            chunk = groups[i:i + LOAD_CHUNK]
            self._merge(conn.execute(select(t).where(_in(t, self.group_columns, chunk))))
            self._known_groups.update(chunk)

    def _merge(self, result) -> None:
        for r in result:
            row = r._asdict()
            key = self.key_of(row)
            if key in self._stored:  # known already: what the batch folded wins
                continue
            self._stored[key] = row
            self._present(key, row)

    def _present(self, key: tuple, row: dict[str, Any]) -> None:
        self._rows[key] = row
        if self.group_of_key is not None:
            self._by_group.setdefault(self.group_of_key(key), {})[key] = None

    def _known(self, key: tuple) -> bool:
        return (self.complete or key in self._stored
                or (self.group_of_key is not None and self.group_of_key(key) in self._known_groups))

    # -- reads and writes of the handlers --------------------------------------------------
    def get(self, key: tuple) -> dict[str, Any] | None:
        row = self._rows.get(key)
        if row is not None or self._known(key):
            return row
        self.need(key)
        self.load(self.unit.connection)
        return self._rows.get(key)

    def group(self, group: tuple) -> list[tuple]:
        """The keys of the rows present in `group`."""
        if not self.complete and group not in self._known_groups:
            self.need_group(group)
            self.load(self.unit.connection)
        return list(self._by_group.get(group, ()))

    def rows(self, group: tuple) -> list[dict[str, Any]]:
        return [self._rows[k] for k in self.group(group)]

    def insert(self, row: dict[str, Any]) -> None:
        """Add a row. A key the batch did not load is taken to be absent: if the target holds it
        after all, the flush fails like the single INSERT would have."""
        if len(row) != len(self.columns):
            row = {c: row.get(c) for c in self.columns}
        key = self.key_of(row)
        rows = self._rows
        if key in rows:
            raise DuplicateRow(f"{self.table.name}: {key}")
        if not self.complete and not self._known(key):
            self._stored[key] = None
        rows[key] = row  # `_present`, inlined: a rebuild inserts ~140k rows
        if self.group_of_key is not None:
            self._by_group.setdefault(self.group_of_key(key), {})[key] = None
        self._dirty[key] = None

    def update(self, key: tuple, **values: Any) -> bool:
        """Change columns of the row with `key`; nothing when there is none (like UPDATE)."""
        row = self.get(key)
        if row is None:
            return False
        self._rows[key] = {**row, **values}
        self._dirty[key] = None
        return True

    def delete(self, key: tuple) -> bool:
        if self.get(key) is None:
            return False
        del self._rows[key]
        if self.group_of_key is not None:
            members = self._by_group.get(self.group_of_key(key))
            if members is not None:
                members.pop(key, None)
        self._dirty[key] = None
        return True

    def delete_group(self, group: tuple) -> None:
        for key in self.group(group):
            self.delete(key)

    def __len__(self) -> int:
        return len(self._rows)

    # -- writing back ----------------------------------------------------------------------
    def changes(self) -> tuple[list[tuple], list[dict], list[dict]]:
        """(deleted keys, updated rows, inserted rows) since the last flush; they count as stored."""
        deletes, updates, inserts = [], [], []
        rows, stored = self._rows, self._stored
        for key in self._dirty:
            now, was = rows.get(key), stored.get(key)
            if now is None:
                if was is not None:
                    deletes.append(key)
            elif was is None:
                inserts.append(now)
            elif now != was:
                updates.append(now)
            stored[key] = now
        self._dirty = {}
        return deletes, updates, inserts

    def forget(self) -> None:
        """Drop every row from memory (written already); later reads load from the target."""
        assert not self._dirty, "flush before forgetting"
        self._rows, self._stored, self._by_group, self._known_groups = {}, {}, {}, set()
        self.complete = False


class Appended:
    """Rows a batch only ever adds (history, audit, versions): written, never read back."""

    def __init__(self, unit: Unit, table: Table, target: Table):
        self.unit = unit
        self.table = table
        self.target = target
        self.columns = tuple(c.name for c in table.columns)
        self.pending: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.pending.append(row)

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        self.pending.extend(rows)


class Unit:
    """One projection's fold of a batch (or, `fresh`, of the whole log into new tables)."""

    def __init__(self, projection: Projection, target: Mapping[Table, Table] | None = None, *, fresh: bool = False,
                 max_rows: int = MAX_ROWS_IN_MEMORY):
        self.projection = projection
        self.fresh = fresh
        self.max_rows = max_rows
        self.connection: Connection | None = None
        #: Values computed while preparing a batch, for its handlers (e.g. a version's includes).
        self.memo: dict[Any, Any] = {}
        target = target or {}
        self.states: dict[Table, Keyed | Appended] = {}
        appended = set(getattr(projection, "appended", ()))
        groups = getattr(projection, "groups", {})
        sql_null = getattr(projection, "sql_null", {})
        for table in projection.tables:
            goal = target.get(table, table)
            if table in appended:
                self.states[table] = Appended(self, table, goal)
            else:
                self.states[table] = Keyed(self, table, goal, groups.get(table, ()), sql_null.get(table, ()))

    def __getitem__(self, table: Table) -> Any:
        return self.states[table]

    def close(self) -> None:
        """Done with it: its states refer to it (a reference cycle), so their rows would wait for the
        cyclic garbage collector, which a rebuild pauses: resumed, its first full collection walked the
        ~300k rows of a 100k-event rebuild (0.6 s). Letting go of them here frees them at once."""
        for state in self.states.values():
            state.unit = None  # type: ignore[assignment]
        self.states = {}
        self.memo = {}

    @property
    def complete(self) -> bool:
        """Every row it folds is in memory: folding reads nothing from the tables."""
        return all(getattr(s, "complete", True) for s in self.states.values())

    def fold(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        """Fold `batch` (in log order) into memory; `flush` writes it."""
        self.connection = conn
        try:
            if not self.fresh or not self.complete:
                self.projection.prepare(self, batch)
                for state in self.states.values():
                    if isinstance(state, Keyed):
                        state.load(conn)
            self.projection.apply(batch, self)
        finally:
            self.connection = None
            self.memo.clear()

    def flush(self, conn: Connection, *, final: bool = True) -> int:
        """Write what changed. A fresh unit writes its appended rows every time and its current-state
        rows only when `final` (or when it holds more than `max_rows`, which it then forgets).
        Returns the number of statements sent."""
        return execute(conn, self.writes(final=final), bulk=self.fresh and conn.dialect.name == "postgresql")

    def writes(self, *, final: bool = True) -> list[Write]:
        """What `flush` writes, in order, taken from the unit (which from then on counts it as written):
        a rebuild hands it to a writer thread (`execute` on the writer's connection) and goes on folding."""
        keyed = [s for s in self.states.values() if isinstance(s, Keyed)]
        write_keyed = final or not self.fresh or sum(len(s) for s in keyed) > self.max_rows
        ops: list[Write] = []
        changes = {s: s.changes() for s in keyed} if write_keyed else {}
        for state in reversed(keyed):  # deletes first: a key deleted and re-added is an update
            if state in changes and changes[state][0]:
                ops.append(Write(state, DELETE, changes[state][0]))
        for state in keyed:
            if state in changes and changes[state][1]:
                ops.append(Write(state, UPDATE, changes[state][1]))
        for state in self.states.values():
            if isinstance(state, Appended):
                rows, state.pending = state.pending, []
            elif state in changes:
                rows = changes[state][2]
            else:
                continue
            if rows:
                ops.append(Write(state, INSERT, rows))
        if self.fresh and write_keyed and not final:  # too many rows in memory: write them and forget them
            for state in keyed:
                state.forget()
                # later batches load rows by key from the target: give it its key's index (built beside
                # without it, adr/0027; made the primary key after the load)
                ops.append(Write(state, KEY_INDEX, []))
                if state.group_columns and state.group_columns != state.key_columns[:len(state.group_columns)]:
                    # later batches load groups from the target: give them an index (dropped before the switch)
                    ops.append(Write(state, GROUP_INDEX, []))
        return ops


DELETE, UPDATE, INSERT, GROUP_INDEX, KEY_INDEX = "delete", "update", "insert", "group index", "key index"


@dataclass(frozen=True)
class Write:
    """One statement of a flush: rows (or keys, for DELETE) of one table."""

    state: Keyed | Appended
    kind: str
    rows: list

    @property
    def target(self) -> Table:
        return self.state.target


def execute(conn: Connection, ops: Sequence[Write], *, bulk: bool = False) -> int:
    """Send a flush's writes (`Unit.writes`), inserts by COPY when `bulk` (Postgres, tables being built
    beside). Returns the number of statements sent."""
    statements = 0
    for op in ops:
        state = op.state
        if op.kind == DELETE:
            conn.execute(_statements(state).delete, [_key_params(state, k) for k in op.rows])
        elif op.kind == UPDATE:
            statements_of = _statements(state)
            conn.execute(statements_of.update, [_update_params(state, statements_of.values, r) for r in op.rows])
        elif op.kind == INSERT:
            write_rows(conn, state.target, op.rows, bulk=bulk, sql_null=getattr(state, "sql_null", frozenset()))
        elif op.kind == KEY_INDEX:
            if conn.dialect.name == "postgresql":  # SQLite builds tables beside with their key
                q = conn.dialect.identifier_preparer
                conn.exec_driver_sql(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {q.quote(key_name(state.target))} ON "
                    f"{q.format_table(state.target)} ({', '.join(q.quote(c) for c in state.key_columns)})")
        else:
            q = conn.dialect.identifier_preparer
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {q.quote(group_index_name(state.target))} ON "
                f"{q.format_table(state.target)} ({', '.join(q.quote(c) for c in state.group_columns)})")
        statements += 1
    return statements


def group_index_name(target: Table) -> str:
    return f"{target.name}_grp"


def key_name(target: Table) -> str:
    """The name Postgres gives a table's primary key (its constraint and its index) by default."""
    return f"{target.name}_pkey"


# -- statements --------------------------------------------------------------------------------
class _Statements:
    def __init__(self, state: Keyed):
        t = state.target
        where = and_(*[t.c[k] == bindparam(f"k_{k}") for k in state.key_columns])
        values = [c for c in state.columns if c not in state.key_columns]
        self.delete = delete(t).where(where)
        self.update = update(t).where(where).values({c: bindparam(f"v_{c}") for c in values}) if values else None
        self.values = values


_cache: dict[int, tuple[Table, _Statements]] = {}


def _statements(state: Keyed) -> _Statements:
    hit = _cache.get(id(state.target))
    if hit is None or hit[0] is not state.target:
        hit = (state.target, _Statements(state))
        _cache[id(state.target)] = hit
    return hit[1]


def _key_params(state: Keyed, key: tuple) -> dict[str, Any]:
    return {f"k_{c}": v for c, v in zip(state.key_columns, key)}


def _update_params(state: Keyed, values: list[str], row: dict[str, Any]) -> dict[str, Any]:
    params = {f"k_{c}": row[c] for c in state.key_columns}
    for c in values:
        value = row[c]
        params[f"v_{c}"] = _null_of(value) if c in state.sql_null else value
    return params


def _null_of(value: Any) -> Any:
    from sqlalchemy import null

    return null() if value is None else value


def _in(table: Table, columns: Sequence[str], keys: list[tuple]):
    if len(columns) == 1:
        return table.c[columns[0]].in_([k[0] for k in keys])
    return tuple_(*[table.c[c] for c in columns]).in_(keys)


def write_rows(conn: Connection, target: Table, rows: list[dict[str, Any]], *, bulk: bool = False,
               sql_null: frozenset[str] = frozenset()) -> int:
    """Insert `rows` (dicts of every column): one executemany, or COPY (`bulk`, Postgres)."""
    if bulk:
        copy_rows(conn, target, rows, sql_null)
        return 1
    if sql_null:
        rows = [{c: (_null_of(v) if c in sql_null else v) for c, v in r.items()} for r in rows]
    conn.execute(insert(target), rows)
    return 1


def copy_rows(conn: Connection, target: Table, rows: list[dict[str, Any]], sql_null: frozenset[str] = frozenset()
              ) -> None:
    """COPY rows into a Postgres table within the connection's transaction. Values are what the
    executemany would send: JSON columns as JSON text (None as JSON null, except in `sql_null`
    columns, where it is SQL NULL, as when an INSERT leaves the column out).

    Binary COPY when every column has a plain type (`_binary_types`): psycopg formats a row in C from
    the Python values, about half the client CPU of text COPY (a rebuild is bound by this process's
    CPU). A value the binary format cannot take as it is (e.g. a number in a text column: text COPY
    sends its text) fails while the rows are formatted, before the server stored any: the rows are then
    sent again in text under a savepoint, so the result is the same either way."""
    shape = _copy_shape(conn, target, sql_null)
    if shape.binary_sql is not None:
        savepoint = conn.begin_nested()
        try:
            _copy(conn, shape, rows, binary=True)
        except _Unformattable:
            savepoint.rollback()
            COPY_FALLBACKS[target.name] = COPY_FALLBACKS.get(target.name, 0) + 1
        else:
            savepoint.commit()
            return
    _copy(conn, shape, rows, binary=False)


#: Binary COPYs that were sent again in text, by table (a value of an unexpected type; see copy_rows).
COPY_FALLBACKS: dict[str, int] = {}


class _Unformattable(Exception):
    """A row psycopg could not format for a binary COPY (the COPY was abandoned)."""


@dataclass(frozen=True)
class _CopyShape:
    columns: tuple[str, ...]
    text_sql: str
    binary_sql: str | None
    types: tuple[str, ...]
    json_at: tuple[tuple[int, Any], ...]
    get: Any


_shapes: dict[tuple[int, frozenset[str]], tuple[Table, _CopyShape]] = {}


def _copy_shape(conn: Connection, target: Table, sql_null: frozenset[str]) -> _CopyShape:
    hit = _shapes.get((id(target), sql_null))
    if hit is not None and hit[0] is target:
        return hit[1]
    preparer = conn.dialect.identifier_preparer
    columns = tuple(c.name for c in target.columns)
    json_at = tuple((i, _json_sql_null if c.name in sql_null else _json)
                    for i, c in enumerate(target.columns) if isinstance(c.type, JSON))
    sql = (f"COPY {preparer.format_table(target)} ({', '.join(preparer.quote(c) for c in columns)}) "
           "FROM STDIN")
    types = _binary_types(target)
    get = itemgetter(*columns) if len(columns) > 1 else (lambda r: (r[columns[0]],))
    shape = _CopyShape(columns, sql, sql + " (FORMAT BINARY)" if types else None, types or (), json_at, get)
    _shapes[(id(target), sql_null)] = (target, shape)
    return shape


def _binary_types(target: Table) -> tuple[str, ...] | None:
    """The Postgres types psycopg formats each column's values as in a binary COPY, or None when a
    column has a type not listed here (the table is then COPYed in text). Strings and JSON (already
    encoded to text by `_json`) go as `text`, whose binary form is what varchar's and json's take."""
    out = []
    for c in target.columns:
        t = c.type
        if isinstance(t, (String, JSON)):
            out.append("text")
        elif isinstance(t, Boolean):
            out.append("bool")
        elif isinstance(t, BigInteger):
            out.append("int8")
        elif isinstance(t, SmallInteger):
            out.append("int2")
        elif isinstance(t, Integer):
            out.append("int4")
        elif isinstance(t, DateTime):
            out.append("timestamptz" if t.timezone else "timestamp")
        else:
            return None
    return tuple(out)


def _copy(conn: Connection, shape: _CopyShape, rows: list[dict[str, Any]], *, binary: bool) -> None:
    columns, get, json_at = shape.columns, shape.get, shape.json_at
    dbapi = conn.connection.dbapi_connection
    with dbapi.cursor() as cursor, cursor.copy(shape.binary_sql if binary else shape.text_sql) as copy:
        if binary:
            copy.set_types(shape.types)
        write = copy.write_row
        try:
            if not json_at:
                for row in rows:
                    try:
                        write(get(row))
                    except KeyError:  # a row that leaves columns out: NULL
                        write([row.get(name) for name in columns])
            else:
                for row in rows:
                    try:
                        values = list(get(row))
                    except KeyError:
                        values = [row.get(name) for name in columns]
                    for i, fn in json_at:
                        values[i] = fn(values[i])
                    write(values)
        except (TypeError, ValueError, OverflowError) as exc:  # formatting a value, before the server saw it
            if binary:
                raise _Unformattable(str(exc)) from exc
            raise


def _not_serialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


#: `json.dumps` with its default settings (the text SQLAlchemy's JSON type sends), without building a
#: new C encoder for every value as `json.dumps` does (~2.5x faster on the small values rows hold;
#: 0.5 million of them in a rebuild of 100k events). No circular check: rows hold no cycles.
_encoder = json.encoder.c_make_encoder(None, _not_serialisable, json.encoder.encode_basestring_ascii, None,
                                       ": ", ", ", False, False, True) if json.encoder.c_make_encoder else None


def dumps(value: Any) -> str:
    if _encoder is None:  # pragma: no cover - CPython always has the C encoder
        return json.dumps(value)
    return "".join(_encoder(value, 0))


def _json(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, Null):
        return None
    return "".join(_encoder(value, 0)) if _encoder is not None else json.dumps(value)


def _json_sql_null(value: Any) -> str | None:
    return None if value is None or isinstance(value, Null) else dumps(value)
