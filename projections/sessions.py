"""Login sessions per user (account-level, keyed by user_id): for `GET /v1/auth/sessions`.

Authentication never reads this table (it checks the Session aggregate); it only lists.
A session is active when it is not revoked and was opened in the user's current session
epoch (logout-all and password changes start a new epoch)."""
from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, String, Table, select

from domain.session import Session
from domain.user import User
from projections.base import Projection
from projections.batch import Unit
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
    groups = {sessions: ("session_id",)}  # refreshes and revocations name the session, not its user

    def prepare(self, unit: Unit, batch: Sequence[Envelope]) -> None:
        for env in batch:
            e = env.event
            if isinstance(e, (User.PasswordChanged, User.AllSessionsRevoked)):
                unit[session_epochs].need((env.target_id,))
            elif isinstance(e, (Session.Refreshed, Session.Revoked)):
                unit[sessions].need_group((env.target_id,))

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, unit: Unit) -> None:
        pass

    @when.register
    def _(self, event: User.Registered, env: Envelope, unit: Unit) -> None:
        unit[session_epochs].insert(dict(user_id=env.target_id, epoch=0))

    @when.register(User.PasswordChanged)
    @when.register(User.AllSessionsRevoked)
    def _(self, event: Any, env: Envelope, unit: Unit) -> None:
        epochs = unit[session_epochs]
        row = epochs.get((env.target_id,))
        if row is not None:
            epochs.update((env.target_id,), epoch=row["epoch"] + 1)

    @when.register
    def _(self, event: Session.Opened, env: Envelope, unit: Unit) -> None:
        e = event
        unit[sessions].insert(dict(
            user_id=str(e.user_id), session_id=env.target_id, opened_at=env.at, user_agent=(e.user_agent or "")[:200],
            epoch=e.epoch, generation=0, position=env.position))

    @staticmethod
    def _session(unit: Unit, env: Envelope, **values: Any) -> None:
        rows = unit[sessions]
        for key in rows.group((env.target_id,)):
            rows.update(key, position=env.position, **values)

    @when.register
    def _(self, event: Session.Refreshed, env: Envelope, unit: Unit) -> None:
        self._session(unit, env, generation=env.event.generation, last_refreshed_at=env.at)

    @when.register
    def _(self, event: Session.Revoked, env: Envelope, unit: Unit) -> None:
        self._session(unit, env, revoked_at=env.at, revoked_reason=env.event.reason[:64])

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
