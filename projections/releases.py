"""Releases: several prompts moved under one label in one step, and their rollbacks."""
from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, String, Table, Text

from domain.release import Release
from projections.base import Projection, json_safe
from projections.batch import Unit
from projections.db import metadata
from projections.events import Envelope
from projections.paging import clamp
from projections.tenancy import rows_of

releases = Table(
    "rm_releases", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("release_id", String(36), primary_key=True),
    Column("label", String(64), nullable=False),
    Column("moves", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("review_id", String(36), nullable=True),
    Column("rollback_of", String(36), nullable=True),
    Column("rolled_back_by", String(36), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("position", BigInteger, nullable=False),
)


class Releases(Projection):
    name = "releases"
    tables = (releases,)

    def prepare(self, unit: Unit, batch: Sequence[Envelope]) -> None:
        for env in batch:
            if isinstance(env.event, Release.RolledBack):
                unit[releases].need((env.org_id, env.target_id))

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, unit: Unit) -> None:
        pass

    @when.register
    def _(self, event: Release.Created, env: Envelope, unit: Unit) -> None:
        unit[releases].insert(dict(
            org_id=env.org_id, release_id=env.target_id, label=event.label, moves=json_safe(event.moves),
            reason=event.reason, review_id=event.review_id or None, rollback_of=event.rollback_of or None,
            rolled_back_by=None, created_at=env.at, created_by=env.actor, position=env.position))

    @when.register
    def _(self, event: Release.RolledBack, env: Envelope, unit: Unit) -> None:
        unit[releases].update((env.org_id, env.target_id), rolled_back_by=event.rollback_release_id)

    def list(self, org_id: str, *, label: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        query = rows_of(releases, org_id)
        if label:
            query = query.where(releases.c.label == label)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(releases.c.position.desc()).limit(clamp(limit)))]

    def get(self, org_id: str, release_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(rows_of(releases, org_id).where(releases.c.release_id == str(release_id))).first()
        return dict(row._mapping) if row else None
