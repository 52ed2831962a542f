"""API keys' metadata: prefix, name, permissions, created, revoked. Never the hash."""
from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import JSON, Column, DateTime, String, Table

from domain.api_key import ApiKey
from projections.base import Projection
from projections.batch import Unit
from projections.db import metadata
from projections.events import Envelope
from projections.tenancy import rows_of

api_keys = Table(
    "rm_api_keys", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("key_id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("permissions", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", String(80), nullable=True),
)


class ApiKeys(Projection):
    name = "api_keys"
    tables = (api_keys,)

    def prepare(self, unit: Unit, batch: Sequence[Envelope]) -> None:
        for env in batch:
            if isinstance(env.event, ApiKey.Revoked):
                unit[api_keys].need((env.org_id, env.target_id))

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, unit: Unit) -> None:
        pass

    @when.register
    def _(self, event: ApiKey.Issued, env: Envelope, unit: Unit) -> None:
        e = event
        unit[api_keys].insert(dict(
            org_id=env.org_id, key_id=env.target_id, name=e.name, prefix=e.prefix, permissions=list(e.permissions),
            created_at=env.at, created_by=env.actor, revoked_at=None, revoked_by=None))

    @when.register
    def _(self, event: ApiKey.Revoked, env: Envelope, unit: Unit) -> None:
        unit[api_keys].update((env.org_id, env.target_id), revoked_at=env.at, revoked_by=env.actor)

    def list(self, org_id: str, include_revoked: bool = True) -> list[dict[str, Any]]:
        query = rows_of(api_keys, org_id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(api_keys.c.created_at, api_keys.c.key_id))]
