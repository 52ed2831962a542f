"""Webhook definitions per organisation (never their secrets: those are derived, adr/0016)."""
from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Integer, String, Table, Text, select

from domain.webhook import Webhook
from projections.base import Projection
from projections.batch import Unit
from projections.db import metadata
from projections.events import Envelope
from projections.tenancy import rows_of

webhooks = Table(
    "rm_webhooks", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("webhook_id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),
    Column("description", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text, nullable=False),
    Column("generation", Integer, nullable=False),
    #: The log position it was created at: it is sent the changes after that.
    Column("created_position", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class Webhooks(Projection):
    name = "webhooks"
    tables = (webhooks,)

    def prepare(self, unit: Unit, batch: Sequence[Envelope]) -> None:
        for env in batch:
            if isinstance(env.event, Webhook.Event) and not isinstance(env.event, Webhook.Created):
                unit[webhooks].need((env.org_id, env.target_id))

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, unit: Unit) -> None:
        pass

    @when.register
    def _(self, event: Webhook.Created, env: Envelope, unit: Unit) -> None:
        unit[webhooks].insert(dict(
            org_id=env.org_id, webhook_id=env.target_id, url=event.url, events=list(event.events),
            description=event.description, enabled=True, disabled_reason="", generation=1,
            created_position=env.position, created_at=env.at, created_by=env.actor, updated_at=env.at))

    @when.register
    def _(self, event: Webhook.Updated, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, url=event.url, events=list(event.events), description=event.description)

    @when.register
    def _(self, event: Webhook.SecretRotated, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, generation=event.generation)

    @when.register
    def _(self, event: Webhook.Disabled, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, enabled=False, disabled_reason=event.reason)

    @when.register
    def _(self, event: Webhook.Enabled, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, enabled=True, disabled_reason="")

    @when.register
    def _(self, event: Webhook.Deleted, env: Envelope, unit: Unit) -> None:
        unit[webhooks].delete((env.org_id, env.target_id))

    @staticmethod
    def _touch(unit: Unit, env: Envelope, **values: Any) -> None:
        unit[webhooks].update((env.org_id, env.target_id), updated_at=env.at, **values)

    # -- queries ----------------------------------------------------------------------------
    def list(self, org_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(rows_of(webhooks, org_id).order_by(webhooks.c.created_at))]

    def get(self, org_id: str, webhook_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(rows_of(webhooks, org_id).where(webhooks.c.webhook_id == str(webhook_id))).first()
        return dict(row._mapping) if row else None

    def enabled(self) -> list[dict[str, Any]]:
        """Every organisation's enabled webhooks (for the delivery worker)."""
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(webhooks).where(webhooks.c.enabled.is_(True)))]

    def disabled(self) -> set[str]:
        """Ids of every organisation's disabled webhooks (the delivery worker leaves them alone)."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(webhooks.c.webhook_id).where(webhooks.c.enabled.is_(False))).scalars())
