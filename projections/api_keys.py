"""API keys' metadata: prefix, name, permissions, created, revoked. Never the hash."""
from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from sqlalchemy import JSON, Column, Connection, DateTime, String, Table, insert, update

from domain.api_key import ApiKey
from projections.base import Projection
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

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, conn: Connection) -> None:
        pass

    @when.register
    def _(self, event: ApiKey.Issued, env: Envelope, conn: Connection) -> None:
        e = event
        conn.execute(insert(api_keys).values(
            org_id=env.org_id, key_id=env.target_id, name=e.name, prefix=e.prefix, permissions=list(e.permissions),
            created_at=env.at, created_by=env.actor))

    @when.register
    def _(self, event: ApiKey.Revoked, env: Envelope, conn: Connection) -> None:
        conn.execute(update(api_keys).where(api_keys.c.org_id == env.org_id, api_keys.c.key_id == env.target_id)
                     .values(revoked_at=env.at, revoked_by=env.actor))

    def list(self, org_id: str, include_revoked: bool = True) -> list[dict[str, Any]]:
        query = rows_of(api_keys, org_id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(api_keys.c.created_at, api_keys.c.key_id))]
