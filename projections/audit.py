"""Audit log: one row per business event, derived from the stream alone.

Only whitelisted, non-secret attributes reach `details`; password hashes, key hashes,
request fingerprints and templates never do. Index aggregates (unique email / prompt name)
and the plan's prompt counter are storage mechanics, not actions, and are not audited."""
from __future__ import annotations

import re
from datetime import datetime
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, String, Table

from domain.errors import Invalid
from domain.prompt import PromptNameIndex
from domain.quota import PromptQuota
from domain.user import EmailIndex
from projections.base import _PLAIN, AppendOnlyProjection, json_safe
from projections.db import metadata
from projections.events import Envelope
from projections.paging import clamp, decode_cursor, encode_cursor
from projections.tenancy import rows_of

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
    "from_name", "to_name", "type", "template_format", "issued_by",
    "protected_labels", "review_policies", "kind", "moves", "requester", "approvals_required", "approver_roles",
    "approver", "comment", "conflicts", "release_id", "review_id", "requested_by", "approved_by", "split",
    "rollback_of", "rollback_release_id", "events", "description",
})


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_ACTIONS: dict[type, tuple[str, str]] = {}
#: An event's attribute names (in order) -> those that reach `details`, in the same order: looked up
#: once per shape of event instead of testing every attribute of every event (a rebuild audits ~50k).
_DETAIL_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _action(cls: type) -> tuple[str, str]:
    """(action, target type) of an event class: `prompt.label_moved`, `prompt`."""
    found = _ACTIONS.get(cls)
    if found is None:
        aggregate, _, event_name = cls.__qualname__.rpartition(".")
        found = _ACTIONS[cls] = (f"{_snake(aggregate)}.{_snake(event_name)}", _snake(aggregate))
    return found


class AuditLog(AppendOnlyProjection):
    name = "audit"
    table = audit_log
    tables = (audit_log,)

    @singledispatchmethod
    def row(self, event: Any, env: Envelope) -> dict[str, Any] | None:
        """Every event is an action, except the index aggregates' (storage mechanics)."""
        e = event
        action, target_type = _action(type(e))
        fields = vars(e)
        shape = tuple(fields)
        names = _DETAIL_NAMES.get(shape)
        if names is None:
            names = _DETAIL_NAMES[shape] = tuple(k for k in fields if k in SAFE_DETAILS)
        details = {}
        for k in names:
            v = fields[k]
            details[k] = v if type(v) in _PLAIN else json_safe(v)
        return dict(
            org_id=env.org_id, position=env.position, occurred_at=env.at, actor=env.actor,
            action=action, target_type=target_type,
            target_id=env.target_id, request_id=env.request_id[:128], details=details,
        )

    @row.register
    def _(self, event: EmailIndex.Event, env: Envelope) -> dict[str, Any] | None:
        return None

    @row.register
    def _(self, event: PromptNameIndex.Event, env: Envelope) -> dict[str, Any] | None:
        return None

    @row.register
    def _(self, event: PromptQuota.Event, env: Envelope) -> dict[str, Any] | None:
        """The plan's counter (adr/0025): its creation is audited as `prompt.created`, its plan
        change as `organisation.plan_changed`."""
        return None

    def query(
        self, org_id: str, *, actor: str | None = None, action: str | None = None, target_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None, cursor: str | None = None, limit: int = 50,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; the cursor is the last position returned."""
        t = audit_log
        query = rows_of(t, org_id)
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
            query = query.where(t.c.position < _position(cursor))
        limit = clamp(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(t.c.position.desc()).limit(limit + 1))]
        if len(rows) > limit:
            rows = rows[:limit]
            return rows, encode_cursor("audit", rows[-1]["position"])
        return rows, None


def _position(cursor: str) -> int:
    kind, value = decode_cursor(cursor, 2)
    if kind != "audit" or not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise Invalid("invalid or foreign cursor", code="INVALID_CURSOR")
    return value
