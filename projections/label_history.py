"""Label history: every move and removal of a label (from, to, who, when)."""
from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, String, Table, func, or_

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
    Column("split", JSON, nullable=True),
    #: The review request the move came through, who requested it, who approved it ('' / []: direct).
    Column("review_id", String(36), nullable=False),
    Column("requested_by", String(80), nullable=False),
    Column("approved_by", JSON, nullable=False),
)
MAX_PAGE = 500


def _move(env: Envelope, to_version: int | None, split: list | None) -> dict[str, Any]:
    e = env.event
    return dict(org_id=env.org_id, prompt_id=env.target_id, position=env.position, label=e.label,
                from_version=e.from_version, to_version=to_version, actor=env.actor, moved_at=env.at, split=split,
                review_id=e.review_id, requested_by=e.requested_by, approved_by=list(e.approved_by))


class LabelHistory(AppendOnlyProjection):
    name = "label_history"
    #: 2: splits and the review each move came through.
    schema_version = 2
    table = label_moves
    tables = (label_moves,)

    @singledispatchmethod
    def row(self, event: Any, env: Envelope) -> dict[str, Any] | None:
        return None

    @row.register
    def _(self, event: Prompt.LabelMoved, env: Envelope) -> dict[str, Any] | None:
        return _move(env, event.to_version, event.split)

    @row.register
    def _(self, event: Prompt.LabelRemoved, env: Envelope) -> dict[str, Any] | None:
        return _move(env, None, None)

    def at(self, org_id: str, label: str, as_of) -> list[dict[str, Any]]:
        """What `label` pointed at for every prompt of the org at `as_of`: each prompt's last move of
        that label in the PREFIX of its moves up to `as_of` (in log order, up to the first move
        stamped later), as prompt time travel takes its stream's prefix: a clock that stepped back
        never lets a later move in while an earlier one is out. Removals count (a removed label is
        absent)."""
        t = label_moves
        # per prompt, the first move stamped after `as_of`: the prefix ends before it
        cut = (rows_of(t, org_id, t.c.prompt_id, func.min(t.c.position).label("position"))
               .where(t.c.label == label, t.c.moved_at > as_of).group_by(t.c.prompt_id).subquery())
        rows = (rows_of(t, org_id).outerjoin(cut, t.c.prompt_id == cut.c.prompt_id)
                .where(t.c.label == label, or_(cut.c.position.is_(None), t.c.position < cut.c.position))
                .order_by(t.c.prompt_id, t.c.position))
        last: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(rows):
                last[row.prompt_id] = dict(row._mapping)
        return [r for r in last.values() if r["to_version"] is not None]

    def list(self, org_id: str, prompt_id: str, label: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        t = label_moves
        query = rows_of(t, org_id).where(t.c.prompt_id == str(prompt_id))
        if label:
            query = query.where(t.c.label == label)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(t.c.position).limit(clamp(limit, MAX_PAGE)))]
