"""Version history: every immutable version of every prompt."""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, String, Table, Text, select

from domain.prompt import Prompt
from projections.base import AppendOnlyProjection, json_safe
from projections.db import metadata
from projections.events import Envelope

prompt_versions = Table(
    "rm_prompt_versions", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("template", Text, nullable=False),
    Column("variables", JSON, nullable=False),
    Column("model_config", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("message", Text, nullable=False),
    Column("author", String(80), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("position", BigInteger, nullable=False),
)

MAX_PAGE = 200


class VersionHistory(AppendOnlyProjection):
    name = "versions"
    table = prompt_versions
    tables = (prompt_versions,)
    handlers = {Prompt.Created: "_version", Prompt.Revised: "_version"}

    def _version(self, env: Envelope) -> dict:
        e = env.event
        return dict(
            org_id=env.org_id, prompt_id=env.target_id, version=getattr(e, "version", 1), template=e.template,
            variables=list(e.variables), model_config=json_safe(e.model_config), tags=list(e.tags),
            message=e.message, author=env.actor, created_at=env.at, position=env.position,
        )

    def list(self, org_id: str, prompt_id: str, *, after: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        t = prompt_versions
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t).where(t.c.org_id == str(org_id), t.c.prompt_id == str(prompt_id), t.c.version > after)
                .order_by(t.c.version).limit(max(1, min(limit, MAX_PAGE)))
            )
            return [dict(r._mapping) for r in rows]

    def get(self, org_id: str, prompt_id: str, version: int) -> dict[str, Any] | None:
        t = prompt_versions
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.org_id == str(org_id), t.c.prompt_id == str(prompt_id),
                                               t.c.version == version)).first()
        return dict(row._mapping) if row else None
