"""Tenancy in one place: every read-model query starts from `rows_of(table, org_id)`.

Every tenant-owned table is keyed by `org_id` first; a query built here can only ever see one
organisation's rows, whatever else it adds (filters, joins on the same org, ordering)."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, Table, select


def org_key(org_id: UUID | str) -> str:
    if not org_id:
        raise ValueError("org_id is required: read models are tenant-scoped")
    return str(org_id)


def of_org(table: Table, org_id: UUID | str) -> ColumnElement[bool]:
    """The predicate restricting `table` to one organisation."""
    return table.c.org_id == org_key(org_id)


def rows_of(table: Table, org_id: UUID | str, *columns: Any) -> Select:
    """`SELECT <columns or *> FROM table WHERE org_id = :org`."""
    return select(*(columns or (table,))).where(of_org(table, org_id))
