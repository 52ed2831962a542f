"""Label history: every move and removal of a label (from, to, who, when)."""
from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, String, Table

from domain.prompt import Prompt
from projections.base import AppendOnlyProjection
from projections.db import metadata
from projections.events import Envelope
from projections.paging import clamp
from projections.tenancy import rows_of

label_moves = Table(
    "rm_label_moves", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("label", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("actor", String(80), nullable=False),
    Column("moved_at", DateTime(timezone=True), nullable=False),
)
MAX_PAGE = 500


def _move(env: Envelope, to_version: int | None) -> dict[str, Any]:
    e = env.event
    return dict(org_id=env.org_id, prompt_id=env.target_id, position=env.position, label=e.label,
                from_version=e.from_version, to_version=to_version, actor=env.actor, moved_at=env.at)


class LabelHistory(AppendOnlyProjection):
    name = "label_history"
    table = label_moves
    tables = (label_moves,)

    @singledispatchmethod
    def row(self, event: Any, env: Envelope) -> dict[str, Any] | None:
        return None

    @row.register
    def _(self, event: Prompt.LabelMoved, env: Envelope) -> dict[str, Any] | None:
        return _move(env, event.to_version)

    @row.register
    def _(self, event: Prompt.LabelRemoved, env: Envelope) -> dict[str, Any] | None:
        return _move(env, None)

    def list(self, org_id: str, prompt_id: str, label: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        t = label_moves
        query = rows_of(t, org_id).where(t.c.prompt_id == str(prompt_id))
        if label:
            query = query.where(t.c.label == label)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(t.c.position).limit(clamp(limit, MAX_PAGE)))]
