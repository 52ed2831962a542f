"""Audit log: one row per business event, derived from the stream alone.

Only whitelisted, non-secret attributes reach `details`; password hashes, key hashes,
request fingerprints and templates never do. Index aggregates (unique email / prompt name)
are storage mechanics, not actions, and are not audited."""
from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, String, Table, select

from domain.errors import Invalid
from domain.prompt import PromptNameIndex
from domain.user import EmailIndex
from projections.base import AppendOnlyProjection, json_safe
from projections.db import metadata
from projections.events import Envelope

audit_log = Table(
    "rm_audit_log", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target_type", String(32), nullable=False),
    Column("target_id", String(36), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_rm_audit_org_actor", "org_id", "actor", "position"),
    Index("ix_rm_audit_org_action", "org_id", "action", "position"),
    Index("ix_rm_audit_org_target", "org_id", "target_id", "position"),
)

SAFE_DETAILS = frozenset({
    "name", "tags", "message", "version", "label", "from_version", "to_version", "user_id", "role", "old_role",
    "new_role", "plan", "prefix", "permissions", "reason", "prompt_id", "key_id", "owner_id", "generation",
})
SKIPPED = (EmailIndex.Event, PromptNameIndex.Event)
MAX_PAGE = 200


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class AuditLog(AppendOnlyProjection):
    name = "audit"
    table = audit_log
    tables = (audit_log,)

    def fallback_row(self, env: Envelope) -> dict | None:
        e = env.event
        if isinstance(e, SKIPPED):
            return None
        aggregate, _, event_name = type(e).__qualname__.rpartition(".")
        details = {k: json_safe(v) for k, v in vars(e).items() if k in SAFE_DETAILS}
        return dict(
            org_id=env.org_id, position=env.position, occurred_at=env.at, actor=env.actor,
            action=f"{_snake(aggregate)}.{_snake(event_name)}", target_type=_snake(aggregate),
            target_id=env.target_id, request_id=env.request_id[:128], details=details,
        )

    def query(
        self, org_id: str, *, actor: str | None = None, action: str | None = None, target_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None, cursor: str | None = None, limit: int = 50,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; the cursor is the last position returned."""
        t = audit_log
        query = select(t).where(t.c.org_id == str(org_id))
        if actor:
            query = query.where(t.c.actor == actor)
        if action:
            query = query.where(t.c.action == action)
        if target_id:
            query = query.where(t.c.target_id == str(target_id))
        if since:
            query = query.where(t.c.occurred_at >= since)
        if until:
            query = query.where(t.c.occurred_at < until)
        if cursor:
            query = query.where(t.c.position < _decode(cursor))
        limit = max(1, min(limit, MAX_PAGE))
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(t.c.position.desc()).limit(limit + 1))]
        if len(rows) > limit:
            rows = rows[:limit]
            return rows, _encode(rows[-1]["position"])
        return rows, None


def _encode(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"p": position}).encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["p"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise ValueError
        return value
    except (ValueError, KeyError, TypeError):
        raise Invalid("invalid cursor", code="INVALID_CURSOR") from None
