"""Login sessions per user (account-level, keyed by user_id): for `GET /v1/auth/sessions`.

Authentication never reads this table (it checks the Session aggregate); it only lists.
A session is active when it is not revoked and was opened in the user's current session
epoch (logout-all and password changes start a new epoch)."""
from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, DateTime, Integer, String, Table, insert, select, update

from domain.session import Session
from domain.user import User
from projections.base import Projection
from projections.db import metadata
from projections.events import Envelope
from projections.paging import clamp

sessions = Table(
    "rm_sessions", metadata,
    Column("user_id", String(36), primary_key=True),
    Column("session_id", String(36), primary_key=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("user_agent", String(200), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("last_refreshed_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_reason", String(64), nullable=True),
    Column("position", BigInteger, nullable=False),
)
session_epochs = Table(
    "rm_session_epochs", metadata,
    Column("user_id", String(36), primary_key=True),
    Column("epoch", Integer, nullable=False),
)



class Sessions(Projection):
    name = "sessions"
    tables = (sessions, session_epochs)

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, conn: Connection) -> None:
        pass

    @when.register
    def _(self, event: User.Registered, env: Envelope, conn: Connection) -> None:
        conn.execute(insert(session_epochs).values(user_id=env.target_id, epoch=0))

    @when.register(User.PasswordChanged)
    @when.register(User.AllSessionsRevoked)
    def _(self, event: Any, env: Envelope, conn: Connection) -> None:
        conn.execute(update(session_epochs).where(session_epochs.c.user_id == env.target_id)
                     .values(epoch=session_epochs.c.epoch + 1))

    @when.register
    def _(self, event: Session.Opened, env: Envelope, conn: Connection) -> None:
        e = event
        conn.execute(insert(sessions).values(
            user_id=str(e.user_id), session_id=env.target_id, opened_at=env.at, user_agent=(e.user_agent or "")[:200],
            epoch=e.epoch, generation=0, position=env.position))

    @when.register
    def _(self, event: Session.Refreshed, env: Envelope, conn: Connection) -> None:
        conn.execute(update(sessions).where(sessions.c.session_id == env.target_id)
                     .values(generation=env.event.generation, last_refreshed_at=env.at, position=env.position))

    @when.register
    def _(self, event: Session.Revoked, env: Envelope, conn: Connection) -> None:
        conn.execute(update(sessions).where(sessions.c.session_id == env.target_id)
                     .values(revoked_at=env.at, revoked_reason=env.event.reason[:64], position=env.position))

    # -- queries ----------------------------------------------------------------------------
    def list(self, user_id: str, *, include_inactive: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, each with `active` (not revoked and opened in the current epoch)."""
        s, e = sessions, session_epochs
        query = (select(s, e.c.epoch.label("current_epoch")).join(e, e.c.user_id == s.c.user_id)
                 .where(s.c.user_id == str(user_id)))
        if not include_inactive:
            query = query.where(s.c.revoked_at.is_(None), s.c.epoch == e.c.epoch)
        query = query.order_by(s.c.opened_at.desc(), s.c.session_id).limit(clamp(limit))
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["active"] = row["revoked_at"] is None and row["epoch"] == row.pop("current_epoch")
        return rows
