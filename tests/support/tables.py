"""Dump read-model tables row by row (for live-vs-rebuilt comparisons)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from projections.base import Projection


def dump(engine: Engine, projection: Projection) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for table in projection.tables:
            order = list(table.primary_key.columns) or list(table.columns)
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return out
