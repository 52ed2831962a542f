"""Building a projection's tables beside the live ones, then switching to them.

A rebuild folds the log into `<table>__next` tables that only it writes, while the live tables keep
answering reads (and the live catch-up keeps folding into them). The tables built beside carry only
their primary key (and unique constraints) while they are loaded, which is what makes COPY fast;
their secondary indexes (and the full-text index) are built after the load, before the switch.
The switch, in one transaction that holds the projection's tracking row lock, drops each live
table and renames the new one (and, on Postgres, its indexes) to the live names, so the result is
the layout `metadata.create_all` makes. Readers see the old tables until the switch commits:
Postgres readers queue behind the switch's short exclusive lock and then read the new tables;
SQLite readers (WAL) keep reading the last committed state and never wait.

Extra DDL a table needs (the catalogue's full-text index) is registered with `register`."""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import Column, Connection, Index, MetaData, Table, UniqueConstraint, text
from sqlalchemy.exc import OperationalError

from projections.batch import group_index_name, key_name

SUFFIX = "__next"
#: How long the switch waits for one attempt at the live tables' locks (Postgres), far below
#: `deadlock_timeout` (1 s by default): a reader is never the one a deadlock check cancels.
LOCK_WAIT_MS = 200
#: The statistics target of the ANALYZE a table built beside gets before the switch (Postgres): a
#: sample of 300 x 10 rows instead of the default 30,000. Sampling is what ANALYZE costs (10x less:
#: 17 ms against 172 ms for 48k change-feed rows), and at the default it was ~1 s of the server's CPU
#: per `rebuild --all`, on the critical path (adr/0028). The planner gets each column's statistics
#: from that sample at once; the ANALYZE names the columns, which leaves the table's count of changes
#: since its last analyze as it is, so autovacuum analyzes the table in full (the full-text expression
#: included) at its next round after the switch.
ANALYZE_TARGET = 10


@dataclass
class Hooks:
    #: Extra indexes on a table built beside (given its name), before the switch.
    index: Callable[[Connection, str], None] | None = None
    #: Before the live table is dropped, and after the new one took its name.
    before_switch: Callable[[Connection], None] | None = None
    after_switch: Callable[[Connection], None] | None = None


HOOKS: dict[str, Hooks] = {}


def register(table_name: str, **hooks: Callable) -> None:
    HOOKS[table_name] = Hooks(**hooks)


@dataclass
class Beside:
    """The tables of one projection built beside its live ones: live table -> new table."""

    tables: dict[Table, Table] = field(default_factory=dict)

    @classmethod
    def of(cls, live: Iterable[Table]) -> Beside:
        metadata = MetaData()
        out = cls()
        for table in live:
            columns = [Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable,
                              autoincrement=c.autoincrement) for c in table.columns]
            uniques = [UniqueConstraint(*[c.name for c in u.columns]) for u in table.constraints
                       if isinstance(u, UniqueConstraint)]
            out.tables[table] = Table(table.name + SUFFIX, metadata, *columns, *uniques)
        return out

    def create(self, conn: Connection) -> None:
        """(Re)create the new tables, empty (a crashed rebuild may have left some behind). On Postgres
        without their primary key: it is built after the load, with the other indexes (`index_steps`),
        from sorted rows, instead of being updated row by row by every COPY (the server's CPU per row
        of a rebuild: COPYing 80k tag rows into a table with its key took 355 ms, 62 ms without it and
        138 ms to build the key after; see adr/0027). A fresh unit holds every key in memory and
        refuses a duplicate itself (`batch.DuplicateRow`); an appended table's duplicate fails the
        building of its key, so the projection fails either way, as with the key in place."""
        self.drop(conn)
        for new in self.tables.values():
            new.create(conn)
            if conn.dialect.name == "postgresql" and new.primary_key.columns:
                conn.exec_driver_sql(f"ALTER TABLE {_q(conn, new.name)} DROP CONSTRAINT {_q(conn, key_name(new))}")

    def drop(self, conn: Connection) -> None:
        for new in self.tables.values():
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_q(conn, new.name)}")

    def index(self, conn: Connection) -> None:
        """After the load: the live tables' secondary indexes, built on the new tables (Postgres;
        SQLite builds them in the switch, where readers do not wait), and fresh statistics."""
        for live in self.tables:
            for step in self.index_steps(live, conn.dialect.name):
                for statement in step:
                    statement(conn)

    def index_steps(self, live: Table, dialect: str) -> list[list[Callable[[Connection], None]]]:
        """The statements that index the table built beside `live`, in steps: the statements of a step
        may run at the same time on different connections (a rebuild builds them in parallel), each
        step after the one before (the group index of a rebuild that ran out of memory goes first,
        statistics last)."""
        new = self.tables[live]
        steps: list[list[Callable[[Connection], None]]] = [
            [lambda conn: conn.exec_driver_sql(f"DROP INDEX IF EXISTS {_q(conn, group_index_name(new))}")]]
        if dialect != "postgresql":
            return steps
        hooks = HOOKS.get(live.name)
        indexes = self._index_statements(live)
        key = [c.name for c in new.primary_key.columns]
        if key:  # the primary key as a unique index, built beside the others (it may exist already: a unit
            # that ran out of memory builds it before it reads rows back), made the key in the last step
            indexes.insert(1 if hooks and hooks.index else 0, lambda conn: conn.exec_driver_sql(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {_q(conn, key_name(new))} ON {_q(conn, new.name)} "
                f"({', '.join(_q(conn, c) for c in key)})"))
        if indexes:
            steps.append(indexes)
        # Statistics from a small sample now, full ones from autovacuum soon after (see ANALYZE_TARGET).
        def last(conn: Connection) -> None:
            if key:
                conn.exec_driver_sql(f"ALTER TABLE {_q(conn, new.name)} ADD CONSTRAINT {_q(conn, key_name(new))} "
                                     f"PRIMARY KEY USING INDEX {_q(conn, key_name(new))}")
            conn.exec_driver_sql(f"SET LOCAL default_statistics_target = {ANALYZE_TARGET}")
            columns = ", ".join(_q(conn, c.name) for c in new.columns)
            conn.exec_driver_sql(f"ANALYZE {_q(conn, new.name)} ({columns})")

        steps.append([last])
        return steps

    def _index_statements(self, live: Table) -> list[Callable[[Connection], None]]:
        """The live table's secondary indexes (the full-text one first: the longest), on its new table."""
        new = self.tables[live]
        statements: list[Callable[[Connection], None]] = [
            lambda conn, index=Index(index.name + SUFFIX, *[new.c[c.name] for c in index.columns],
                                     unique=index.unique): index.create(conn)
            for index in sorted(live.indexes, key=lambda i: i.name)]
        hooks = HOOKS.get(live.name)
        if hooks and hooks.index:
            statements.insert(0, lambda conn: hooks.index(conn, new.name))
        return statements

    def switch(self, conn: Connection, *, patience_s: float = 30.0) -> None:
        """Replace every live table by its new one, in the caller's transaction."""
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            self._lock_live(conn, patience_s)
        for live, new in self.tables.items():
            hooks = HOOKS.get(live.name) or Hooks()
            if hooks.before_switch:
                hooks.before_switch(conn)
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_q(conn, live.name)}")
            conn.exec_driver_sql(f"ALTER TABLE {_q(conn, new.name)} RENAME TO {_q(conn, live.name)}")
            if postgres:
                names = conn.execute(text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                                          "AND tablename = :t"), {"t": live.name}).scalars().all()
                for name in names:
                    wanted = _live_name(name, new.name, live.name)
                    if wanted != name:
                        conn.exec_driver_sql(f"ALTER INDEX {_q(conn, name)} RENAME TO {_q(conn, wanted)}")
            else:
                for index in live.indexes:
                    index.create(conn)
            if hooks.after_switch:
                hooks.after_switch(conn)


    def _lock_live(self, conn: Connection, patience_s: float) -> None:
        """Take every live table's exclusive lock before changing any (Postgres). Readers hold their
        tables' shared locks in their own order (`rm_memberships JOIN rm_users`): dropping the tables
        one by one deadlocked with them, and Postgres then cancelled a reader. The locks are taken
        together, each wait bounded well below `deadlock_timeout`; when one is busy, all are let go
        (savepoint) and taken again shortly after: the switch yields, readers never fail."""
        names = ", ".join(_q(conn, live.name) for live in self.tables)
        deadline = time.monotonic() + patience_s
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT_MS}ms'")
        attempt = 0
        while True:
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
                return
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != "55P03" or time.monotonic() > deadline:  # lock_not_available
                    raise
                attempt += 1
                time.sleep(min(0.2, 0.01 * attempt) * random.random())


def _live_name(name: str, new_table: str, live_table: str) -> str:
    """The live name of an index of a table built beside: `rm_x__next_pkey` -> `rm_x_pkey`,
    `ix_rm_x_y__next` -> `ix_rm_x_y`."""
    if new_table in name:
        return name.replace(new_table, live_table)
    if name.endswith(SUFFIX):
        return name[: -len(SUFFIX)]
    return name


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)
