"""Organisations, their members, and the users' directory (per user: orgs; per org: members)."""
from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, String, Table, select

from domain.organisation import Organisation
from domain.quota import PromptQuota
from domain.user import User
from projections.base import Projection
from projections.batch import Unit
from projections.db import metadata
from projections.events import Envelope
from projections.tenancy import rows_of

organisations = Table(
    "rm_organisations", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("plan", String(16), nullable=False),
    Column("prompt_count", Integer, nullable=False),
    Column("active_api_keys", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("position", BigInteger, nullable=False),
)
memberships = Table(
    "rm_memberships", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("user_id", String(36), primary_key=True, index=True),
    Column("role", String(16), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
)
users = Table(
    "rm_users", metadata,
    Column("user_id", String(36), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("display_name", String(100), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)


class Memberships(Projection):
    name = "memberships"
    tables = (users, organisations, memberships)

    def prepare(self, unit: Unit, batch: Sequence[Envelope]) -> None:
        orgs, members = unit[organisations], unit[memberships]
        for env in batch:
            e = env.event
            if isinstance(e, (Organisation.Event, PromptQuota.PromptCounted)):
                orgs.need((env.org_id,))
                user_id = getattr(e, "user_id", None)
                if user_id is not None:
                    members.need((env.org_id, str(user_id)))

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, unit: Unit) -> None:
        pass

    @when.register
    def _(self, event: User.Registered, env: Envelope, unit: Unit) -> None:
        unit[users].insert(dict(user_id=env.target_id, email=event.email, display_name=event.display_name,
                                registered_at=env.at))

    @when.register
    def _(self, event: Organisation.Created, env: Envelope, unit: Unit) -> None:
        unit[organisations].insert(dict(
            org_id=env.org_id, name=event.name, plan=event.plan, prompt_count=0, active_api_keys=0, created_at=env.at,
            created_by=env.actor, position=env.position))
        unit[memberships].insert(dict(org_id=env.org_id, user_id=str(event.owner_id), role="owner", since=env.at))

    @staticmethod
    def _org(unit: Unit, env: Envelope, **values: Any) -> None:
        unit[organisations].update((env.org_id,), position=env.position, **values)

    @staticmethod
    def _count(unit: Unit, env: Envelope, column: str, delta: int) -> None:
        row = unit[organisations].get((env.org_id,))
        if row is not None:
            unit[organisations].update((env.org_id,), position=env.position, **{column: row[column] + delta})

    @when.register
    def _(self, event: Organisation.Renamed, env: Envelope, unit: Unit) -> None:
        self._org(unit, env, name=event.name)

    @when.register
    def _(self, event: Organisation.PlanChanged, env: Envelope, unit: Unit) -> None:
        self._org(unit, env, plan=event.plan)

    @when.register
    def _(self, event: Organisation.PromptAdded, env: Envelope, unit: Unit) -> None:  # logs before adr/0025
        self._count(unit, env, "prompt_count", 1)

    @when.register
    def _(self, event: PromptQuota.PromptCounted, env: Envelope, unit: Unit) -> None:
        self._count(unit, env, "prompt_count", 1)

    @when.register
    def _(self, event: Organisation.ApiKeyAdded, env: Envelope, unit: Unit) -> None:
        self._count(unit, env, "active_api_keys", 1)

    @when.register
    def _(self, event: Organisation.ApiKeyReleased, env: Envelope, unit: Unit) -> None:
        self._count(unit, env, "active_api_keys", -1)

    @when.register
    def _(self, event: Organisation.MemberAdded, env: Envelope, unit: Unit) -> None:
        unit[memberships].insert(dict(org_id=env.org_id, user_id=str(event.user_id), role=event.role, since=env.at))
        self._org(unit, env)

    @when.register
    def _(self, event: Organisation.MemberRoleChanged, env: Envelope, unit: Unit) -> None:
        unit[memberships].update((env.org_id, str(event.user_id)), role=event.new_role)
        self._org(unit, env)

    @when.register
    def _(self, event: Organisation.MemberRemoved, env: Envelope, unit: Unit) -> None:
        unit[memberships].delete((env.org_id, str(event.user_id)))
        self._org(unit, env)

    # -- queries ----------------------------------------------------------------------------
    def orgs_of(self, user_id: str) -> list[dict[str, Any]]:
        m, o = memberships, organisations
        query = (select(o.c.org_id, o.c.name, o.c.plan, m.c.role).join(m, m.c.org_id == o.c.org_id)
                 .where(m.c.user_id == str(user_id)).order_by(o.c.name, o.c.org_id))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def organisation(self, org_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(rows_of(organisations, org_id)).first()
        return dict(row._mapping) if row else None

    def members(self, org_id: str) -> list[dict[str, Any]]:
        m, u = memberships, users
        query = (rows_of(m, org_id, m.c.user_id, m.c.role, m.c.since, u.c.email, u.c.display_name)
                 .join(u, u.c.user_id == m.c.user_id).order_by(u.c.email))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
