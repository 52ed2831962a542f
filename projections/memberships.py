"""Organisations, their members, and the users' directory (per user: orgs; per org: members)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Connection, DateTime, Integer, String, Table, delete, insert, select, update

from domain.organisation import Organisation
from domain.user import User
from projections.base import Projection
from projections.db import metadata
from projections.events import Envelope

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
    handlers = {
        User.Registered: "_registered", Organisation.Created: "_org_created", Organisation.Renamed: "_renamed",
        Organisation.PlanChanged: "_plan", Organisation.MemberAdded: "_member_added",
        Organisation.MemberRoleChanged: "_role_changed", Organisation.MemberRemoved: "_member_removed",
        Organisation.PromptAdded: "_counts", Organisation.ApiKeyAdded: "_counts",
        Organisation.ApiKeyReleased: "_counts",
    }

    def _registered(self, conn: Connection, env: Envelope) -> None:
        e = env.event
        conn.execute(insert(users).values(user_id=env.target_id, email=e.email, display_name=e.display_name,
                                          registered_at=env.at))

    def _org_created(self, conn: Connection, env: Envelope) -> None:
        e = env.event
        conn.execute(insert(organisations).values(
            org_id=env.org_id, name=e.name, plan=e.plan, prompt_count=0, active_api_keys=0, created_at=env.at,
            created_by=env.actor, position=env.position))
        conn.execute(insert(memberships).values(org_id=env.org_id, user_id=str(e.owner_id), role="owner", since=env.at))

    def _org(self, conn: Connection, env: Envelope, **values: Any) -> None:
        conn.execute(update(organisations).where(organisations.c.org_id == env.org_id)
                     .values(position=env.position, **values))

    def _renamed(self, conn: Connection, env: Envelope) -> None:
        self._org(conn, env, name=env.event.name)

    def _plan(self, conn: Connection, env: Envelope) -> None:
        self._org(conn, env, plan=env.event.plan)

    def _counts(self, conn: Connection, env: Envelope) -> None:
        name = type(env.event).__name__
        if name == "PromptAdded":
            self._org(conn, env, prompt_count=organisations.c.prompt_count + 1)
        else:
            delta = 1 if name == "ApiKeyAdded" else -1
            self._org(conn, env, active_api_keys=organisations.c.active_api_keys + delta)

    def _member_added(self, conn: Connection, env: Envelope) -> None:
        e = env.event
        conn.execute(insert(memberships).values(org_id=env.org_id, user_id=str(e.user_id), role=e.role, since=env.at))
        self._org(conn, env)

    def _role_changed(self, conn: Connection, env: Envelope) -> None:
        e = env.event
        conn.execute(update(memberships).where(memberships.c.org_id == env.org_id,
                                               memberships.c.user_id == str(e.user_id)).values(role=e.new_role))
        self._org(conn, env)

    def _member_removed(self, conn: Connection, env: Envelope) -> None:
        conn.execute(delete(memberships).where(memberships.c.org_id == env.org_id,
                                               memberships.c.user_id == str(env.event.user_id)))
        self._org(conn, env)

    # -- queries ----------------------------------------------------------------------------
    def orgs_of(self, user_id: str) -> list[dict[str, Any]]:
        m, o = memberships, organisations
        query = (select(o.c.org_id, o.c.name, o.c.plan, m.c.role).join(m, m.c.org_id == o.c.org_id)
                 .where(m.c.user_id == str(user_id)).order_by(o.c.name, o.c.org_id))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def organisation(self, org_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(organisations).where(organisations.c.org_id == str(org_id))).first()
        return dict(row._mapping) if row else None

    def members(self, org_id: str) -> list[dict[str, Any]]:
        m, u = memberships, users
        query = (select(m.c.user_id, m.c.role, m.c.since, u.c.email, u.c.display_name)
                 .join(u, u.c.user_id == m.c.user_id).where(m.c.org_id == str(org_id)).order_by(u.c.email))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
