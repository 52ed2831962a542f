"""The in-memory unit a batch is folded into (projections.batch): the semantics of the SQL statements
it replaces, and the statements it writes back (SQLite in memory)."""
from __future__ import annotations

from functools import singledispatchmethod

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, create_engine, event, insert, select, text
from sqlalchemy.exc import IntegrityError

from projections.base import Projection
from projections.batch import DuplicateRow

metadata = MetaData()
items = Table("t_items", metadata, Column("org", String, primary_key=True), Column("id", String, primary_key=True),
              Column("n", Integer, nullable=False), Column("doc", JSON, nullable=True), Column("extra", JSON, nullable=True))
parts = Table("t_parts", metadata, Column("org", String, primary_key=True), Column("part", String, primary_key=True),
              Column("id", String, primary_key=True))
log = Table("t_log", metadata, Column("pos", Integer, primary_key=True), Column("what", String, nullable=False))


class Toy(Projection):
    name = "toy"
    tables = (items, parts, log)
    appended = (log,)
    groups = {parts: ("org", "id")}
    sql_null = {items: ("extra",)}

    @singledispatchmethod
    def when(self, event, env, unit):
        pass


@pytest.fixture
def engine():
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(items), [{"org": "o", "id": "a", "n": 1, "doc": {"k": 1}, "extra": None},
                                     {"org": "o", "id": "b", "n": 2, "doc": None, "extra": None}])
        conn.execute(insert(parts), [{"org": "o", "part": "x", "id": "a"}, {"org": "o", "part": "y", "id": "a"}])
    return engine


def _statements(engine):
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *a: seen.append(statement))
    return seen


def test_updates_and_deletes_of_missing_rows_do_nothing_and_inserts_of_present_ones_fail(engine):
    unit = Toy(engine).unit()
    with engine.begin() as conn:
        unit.connection = conn
        rows = unit[items]
        assert rows.update(("o", "zz"), n=5) is False
        assert rows.delete(("o", "zz")) is False
        rows.update(("o", "a"), n=rows.get(("o", "a"))["n"] + 1)
        with pytest.raises(DuplicateRow):  # known to be there
            rows.insert({"org": "o", "id": "a", "n": 9})
        unit.flush(conn)
    with engine.connect() as conn:
        assert conn.execute(select(items.c.n).where(items.c.id == "a")).scalar() == 2
    unit = Toy(engine).unit()
    with pytest.raises(IntegrityError), engine.begin() as conn:  # not loaded: the INSERT fails, as it did
        unit.connection = conn
        unit[items].insert({"org": "o", "id": "b", "n": 9})
        unit.flush(conn)


def test_a_batch_is_loaded_once_and_written_as_differences(engine):
    unit = Toy(engine).unit()
    seen = _statements(engine)
    with engine.begin() as conn:
        unit.connection = conn
        rows, members = unit[items], unit[parts]
        rows.need(("o", "a"))
        rows.need(("o", "b"))
        members.need_group(("o", "a"))
        rows.load(conn)
        members.load(conn)
        loads = len(seen)
        assert loads == 2
        for _ in range(50):  # churn that ends where it started: nothing to write
            rows.update(("o", "a"), n=7)
            rows.update(("o", "a"), n=1)
        rows.delete(("o", "b"))
        rows.insert({"org": "o", "id": "b", "n": 2, "doc": None})  # deleted and re-added as it was
        assert sorted(members.group(("o", "a"))) == [("o", "x", "a"), ("o", "y", "a")]
        members.delete(("o", "x", "a"))
        members.insert({"org": "o", "part": "z", "id": "a"})
        rows.insert({"org": "o", "id": "c", "n": 3, "doc": [1]})
        unit[log].add({"pos": 1, "what": "hello"})
        assert len(seen) == loads, "no query while folding"
        unit.flush(conn)
    written = seen[loads:]
    assert len(written) == 4, written  # delete part x; insert items c; insert part z; insert log
    with engine.connect() as conn:
        assert sorted(r.part for r in conn.execute(select(parts))) == ["y", "z"]
        assert conn.execute(select(items.c.doc).where(items.c.id == "c")).scalar() == [1]


def test_an_undeclared_row_is_loaded_on_first_use(engine):
    unit = Toy(engine).unit()
    seen = _statements(engine)
    with engine.begin() as conn:
        unit.connection = conn
        assert unit[items].get(("o", "a"))["n"] == 1
        assert unit[items].get(("o", "a"))["n"] == 1
        assert unit[parts].rows(("o", "a"))
        assert unit[parts].rows(("o", "a"))
    assert len(seen) == 2


def test_columns_left_out_by_the_old_inserts_stay_sql_null(engine):
    """JSON columns: None is JSON null, except where the per-event INSERT left the column out."""
    unit = Toy(engine).unit()
    with engine.begin() as conn:
        unit.connection = conn
        unit[items].insert({"org": "p", "id": "a", "n": 1, "doc": None, "extra": None})
        unit.flush(conn)
        raw = conn.execute(text("SELECT doc, extra FROM t_items WHERE org = 'p'")).one()
    assert raw == ("null", None)


def test_a_fresh_unit_writes_current_rows_once_unless_it_holds_too_many(engine):
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM t_items"))
        conn.execute(text("DELETE FROM t_parts"))
    for max_rows, writes in ((1000, 1), (2, 3)):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM t_items"))
        unit = Toy(engine).unit(fresh=True, max_rows=max_rows)
        seen = _statements(engine)
        for batch in range(3):
            with engine.begin() as conn:
                unit.connection = conn
                rows = unit[items]
                for i in range(3):
                    if batch:
                        rows.update(("o", str(i)), n=rows.get(("o", str(i)))["n"] + 1)
                    else:
                        rows.insert({"org": "o", "id": str(i), "n": 0})
                unit.flush(conn, final=batch == 2)
        inserts_or_updates = [s for s in seen if s.startswith(("INSERT", "UPDATE"))]
        assert len(inserts_or_updates) == writes, (max_rows, seen)
        with engine.connect() as conn:
            assert sorted(conn.execute(select(items.c.n))) == [(2,), (2,), (2,)]
