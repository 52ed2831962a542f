"""Audit events of an organisation (audit:read), newest first, from the audit read model."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from interfaces.http.deps import AuditScope, ContainerDep, fresh
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.audit import AuditEventOut, AuditPage
from interfaces.http.kit import parse_instant

router = APIRouter(prefix="/v1/orgs/{org_id}/audit-events", tags=["audit"], responses=ERRORS)


@router.get("", response_model=AuditPage, summary="Audit events with filters and cursor pagination")
def audit_events(
    scope: AuditScope, _: fresh("audit"), container: ContainerDep,
    actor: Annotated[str | None, Query(max_length=80, description="e.g. user:<id> or api_key:<id>")] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. prompt.label_moved")] = None,
    target: Annotated[str | None, Query(max_length=36, description="Target aggregate id")] = None,
    since: Annotated[str | None, Query(max_length=64, description="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description="RFC 3339, exclusive")] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    rows, next_cursor = container.audit.query(
        str(scope.org_id), actor=actor, action=action, target_id=target,
        since=parse_instant(since, "since") if since else None, until=parse_instant(until, "until") if until else None,
        cursor=cursor, limit=limit,
    )
    return AuditPage(items=[AuditEventOut(**{k: r[k] for k in AuditEventOut.model_fields}) for r in rows],
                     next_cursor=next_cursor)
