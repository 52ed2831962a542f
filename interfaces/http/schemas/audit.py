"""Audit events."""
from __future__ import annotations

from typing import Any

from interfaces.http.schemas.common import Instant, ResponseModel


class AuditEventOut(ResponseModel):
    position: int
    occurred_at: Instant
    actor: str
    action: str
    target_type: str
    target_id: str
    request_id: str
    details: dict[str, Any]


class AuditPage(ResponseModel):
    items: list[AuditEventOut]
    next_cursor: str | None
