"""The rows a rebuild COPYs into its tables on Postgres (projections.batch.copy_rows): binary COPY
where every column has a plain type, text COPY otherwise, the same rows either way."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Integer, MetaData, Numeric, String, Table, insert, select

from projections import batch

pytestmark = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

AT = datetime(2026, 12, 7, 10, 11, 12, 131415, tzinfo=timezone(timedelta(hours=2)))


def _tables():
    metadata = MetaData()
    plain = Table("t_copy_plain", metadata, Column("k", String(12), primary_key=True), Column("n", Integer),
                  Column("big", BigInteger), Column("flag", Boolean), Column("at", DateTime(timezone=True)),
                  Column("doc", JSON, nullable=False), Column("extra", JSON, nullable=True))
    other = Table("t_copy_other", metadata, Column("k", String(12), primary_key=True), Column("amount", Numeric(10, 2)))
    return metadata, plain, other


ROWS = [
    {"k": "a", "n": 1, "big": 2**40, "flag": True, "at": AT, "doc": {"x": [1, "é", None]}, "extra": {"y": 2}},
    {"k": "b", "n": None, "big": None, "flag": None, "at": None, "doc": None, "extra": None},
    {"k": "c", "n": -5, "big": 0, "flag": False, "at": AT, "doc": "text", "extra": None},
]


def _dump(conn, table):
    return [tuple(r) for r in conn.execute(select(table).order_by(table.c.k))]


def test_copy_stores_what_an_insert_stores(container):
    metadata, plain, other = _tables()
    engine = container.engine
    metadata.create_all(engine)
    try:
        assert batch._binary_types(plain) == ("text", "int4", "int8", "bool", "timestamptz", "text", "text")
        assert batch._binary_types(other) is None  # a type it does not list: text COPY
        with engine.begin() as conn:
            conn.execute(insert(plain), [{**r, "k": "i" + r["k"],
                                          "extra": batch._null_of(r["extra"])} for r in ROWS])
            inserted = [(k[1:], *rest) for k, *rest in _dump(conn, plain)]
            conn.execute(plain.delete())
            before = dict(batch.COPY_FALLBACKS)
            batch.copy_rows(conn, plain, ROWS, frozenset({"extra"}))
            assert batch.COPY_FALLBACKS == before, "plain values go in binary"
            assert _dump(conn, plain) == inserted
            batch.copy_rows(conn, other, [{"k": "a", "amount": 1.5}])
            assert [tuple(r) for r in conn.execute(select(other.c.k, other.c.amount.cast(String)))] == [("a", "1.50")]
    finally:
        metadata.drop_all(engine)


def test_a_value_binary_copy_cannot_format_goes_in_text_with_the_rest_of_its_rows(container):
    """A number in a text column: text COPY sends its text, binary COPY cannot format it. The rows are
    sent again in text, in the same transaction; the rows COPYed before it are kept."""
    metadata, plain, _ = _tables()
    engine = container.engine
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            batch.copy_rows(conn, plain, ROWS[:1], frozenset({"extra"}))
            before = batch.COPY_FALLBACKS.get(plain.name, 0)
            batch.copy_rows(conn, plain, [{**ROWS[2], "k": 42}, {**ROWS[1], "k": "z"}], frozenset({"extra"}))
            assert batch.COPY_FALLBACKS[plain.name] == before + 1
        with engine.connect() as conn:
            assert [r[0] for r in _dump(conn, plain)] == ["42", "a", "z"]
            assert _dump(conn, plain)[0][1:] == (-5, 0, False, AT, "text", None)
    finally:
        metadata.drop_all(engine)


def test_a_row_the_server_refuses_fails_the_copy(container):
    """Only formatting failures fall back to text: a duplicate key fails as it did."""
    metadata, plain, _ = _tables()
    engine = container.engine
    metadata.create_all(engine)
    try:
        with pytest.raises(Exception, match="duplicate key"):
            with engine.begin() as conn:
                batch.copy_rows(conn, plain, [ROWS[0], ROWS[0]], frozenset({"extra"}))
        with engine.connect() as conn:
            assert _dump(conn, plain) == []
    finally:
        metadata.drop_all(engine)
