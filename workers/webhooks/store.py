"""The delivery worker's own state: each webhook's cursor in the change feed, its deliveries and
their attempts.

Not a projection: it records what happened when talking to receivers (attempts, status codes,
latencies), which the event stream cannot know, and a projection rebuild leaves it alone. Every
table is keyed by org_id first; tenant queries start from projections.tenancy.

- `webhook_cursors`: the last change position considered for the webhook (delivered or not
  subscribed to), and the webhook's run of consecutive failures.
- `webhook_deliveries`: one row per (webhook, change): its primary key makes creating a delivery
  exactly-once, whichever worker gets there first. The body is fixed at creation, so every attempt
  and a manual redelivery send the same bytes.
- `webhook_attempts`: the delivery log."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Engine, Index, Integer, String, Table, Text, and_,
                        func, insert, or_, select, update)

from sqlalchemy.exc import IntegrityError

from projections.db import metadata, write
from projections.paging import clamp
from projections.tenancy import rows_of

PENDING, DELIVERED, CANCELLED = "pending", "delivered", "cancelled"

cursors = Table(
    "webhook_cursors", metadata,
    Column("webhook_id", String(36), primary_key=True),
    Column("org_id", String(36), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("failing_since", DateTime(timezone=True), nullable=True),
)
deliveries = Table(
    "webhook_deliveries", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("webhook_id", String(36), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("delivery_id", String(36), nullable=False, unique=True),
    Column("type", String(48), nullable=False),
    Column("body", Text, nullable=False),
    #: pending | delivered | cancelled (the webhook was deleted first)
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhook_deliveries_pending", "state", "webhook_id", "position"),
)
attempts = Table(
    "webhook_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", String(36), nullable=False),
    Column("webhook_id", String(36), nullable=False),
    Column("delivery_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("manual", Boolean, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("next_retry_at", DateTime(timezone=True), nullable=True),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Index("ix_webhook_attempts_delivery", "org_id", "delivery_id", "id"),
)


class _Raced(Exception):
    """Another worker moved the cursor first (its transaction created these deliveries)."""


class DeliveryStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # -- the feed cursor (exactly-once creation) ---------------------------------------------
    def cursor(self, webhook: dict[str, Any]) -> dict[str, Any]:
        """The webhook's cursor, created at its creation position the first time."""
        with self.engine.connect() as conn:
            row = conn.execute(select(cursors).where(cursors.c.webhook_id == webhook["webhook_id"])).first()
        if row is not None:
            return dict(row._mapping)
        start = {"webhook_id": webhook["webhook_id"], "org_id": webhook["org_id"],
                 "position": webhook["created_position"], "failures": 0, "failing_since": None}
        try:
            with write(self.engine) as conn:
                if conn.execute(select(cursors.c.webhook_id).where(cursors.c.webhook_id == webhook["webhook_id"])).first() is None:
                    conn.execute(insert(cursors).values(**start))
        except IntegrityError:  # another worker created it first (Postgres: both saw no row)
            pass
        return start

    def create(self, webhook_id: str, expected: int, position: int, rows: list[dict[str, Any]]) -> bool:
        """Create deliveries and move the cursor from `expected` to `position`, atomically. False
        (nothing written) when another worker moved the cursor first."""
        try:
            with write(self.engine) as conn:
                moved = conn.execute(update(cursors).where(cursors.c.webhook_id == webhook_id,
                                                           cursors.c.position == expected).values(position=position))
                if moved.rowcount != 1:
                    raise _Raced
                if rows:
                    conn.execute(insert(deliveries), rows)
        except (_Raced, IntegrityError):
            return False
        return True

    # -- sending -----------------------------------------------------------------------------
    def head(self, webhook_id: str) -> dict[str, Any] | None:
        """The webhook's oldest pending delivery: deliveries go out one at a time, in order."""
        query = (select(deliveries).where(deliveries.c.state == PENDING, deliveries.c.webhook_id == webhook_id)
                 .order_by(deliveries.c.position).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def due(self, now: datetime) -> list[tuple[str, str]]:
        """(org_id, webhook_id) of every webhook whose oldest pending delivery is due."""
        heads = (select(deliveries.c.webhook_id, func.min(deliveries.c.position).label("position"))
                 .where(deliveries.c.state == PENDING).group_by(deliveries.c.webhook_id).subquery())
        query = (select(deliveries.c.org_id, deliveries.c.webhook_id).join(heads, and_(
            deliveries.c.webhook_id == heads.c.webhook_id, deliveries.c.position == heads.c.position))
            .where(or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now)))
        with self.engine.connect() as conn:
            return [(r.org_id, r.webhook_id) for r in conn.execute(query)]

    def failures(self, webhook_id: str) -> tuple[int, datetime | None]:
        with self.engine.connect() as conn:
            row = conn.execute(select(cursors.c.failures, cursors.c.failing_since)
                               .where(cursors.c.webhook_id == webhook_id)).first()
        return (row.failures, row.failing_since) if row else (0, None)

    def attempted(self, delivery: dict[str, Any], *, ok: bool, status_code: int | None, latency_ms: int,
                  error: str | None, at: datetime, next_retry_at: datetime | None = None, manual: bool = False,
                  failures: int = 0, failing_since: datetime | None = None) -> int:
        """Log an attempt and its consequences in one transaction; returns the attempt's number.
        An automatic attempt also updates the webhook's failure run and the delivery's next try."""
        with write(self.engine) as conn:
            number = conn.execute(select(deliveries.c.attempts).where(
                deliveries.c.org_id == delivery["org_id"], deliveries.c.webhook_id == delivery["webhook_id"],
                deliveries.c.position == delivery["position"]).with_for_update()).scalar_one() + 1
            values: dict[str, Any] = {"attempts": number}
            if ok:
                values.update(state=DELIVERED, delivered_at=at, next_attempt_at=None)
            elif not manual:
                values.update(next_attempt_at=next_retry_at)
            where = [deliveries.c.org_id == delivery["org_id"], deliveries.c.webhook_id == delivery["webhook_id"],
                     deliveries.c.position == delivery["position"]]
            if ok:  # a delivered (or cancelled) delivery stays so
                conn.execute(update(deliveries).where(*where).values(attempts=number))
                conn.execute(update(deliveries).where(*where, deliveries.c.state == PENDING).values(**values))
            else:
                conn.execute(update(deliveries).where(*where).values(**values))
            conn.execute(insert(attempts).values(
                org_id=delivery["org_id"], webhook_id=delivery["webhook_id"], delivery_id=delivery["delivery_id"],
                attempt=number, manual=manual, ok=ok, status_code=status_code, latency_ms=latency_ms, error=error,
                next_retry_at=next_retry_at, attempted_at=at))
            if not manual:
                conn.execute(update(cursors).where(cursors.c.webhook_id == delivery["webhook_id"]).values(
                    failures=0 if ok else failures, failing_since=None if ok else failing_since))
        return number

    def reset_failures(self, webhook_id: str) -> None:
        """After disabling: a re-enabled webhook starts with a fresh budget, its head due at once."""
        with write(self.engine) as conn:
            conn.execute(update(cursors).where(cursors.c.webhook_id == webhook_id).values(failures=0, failing_since=None))
            conn.execute(update(deliveries).where(deliveries.c.webhook_id == webhook_id, deliveries.c.state == PENDING)
                         .values(next_attempt_at=None))

    def cancel(self, webhook_id: str) -> int:
        """The webhook was deleted: its pending deliveries will never be sent."""
        with write(self.engine) as conn:
            return conn.execute(update(deliveries).where(deliveries.c.webhook_id == webhook_id,
                                                         deliveries.c.state == PENDING)
                                .values(state=CANCELLED, next_attempt_at=None)).rowcount

    # -- the delivery log (tenant-scoped) ------------------------------------------------------
    def log(self, org_id: str, webhook_id: str, *, before: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The webhook's deliveries, newest first, each with its attempts."""
        query = rows_of(deliveries, org_id).where(deliveries.c.webhook_id == str(webhook_id))
        if before is not None:
            query = query.where(deliveries.c.position < before)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(deliveries.c.position.desc()).limit(clamp(limit)))]
            by_id = {r["delivery_id"]: r | {"log": []} for r in rows}
            if by_id:
                for a in conn.execute(rows_of(attempts, org_id).where(attempts.c.delivery_id.in_(list(by_id)))
                                      .order_by(attempts.c.id)):
                    by_id[a.delivery_id]["log"].append(dict(a._mapping))
        return list(by_id.values())

    def delivery(self, org_id: str, webhook_id: str, delivery_id: str) -> dict[str, Any] | None:
        query = rows_of(deliveries, org_id).where(deliveries.c.webhook_id == str(webhook_id),
                                                 deliveries.c.delivery_id == str(delivery_id))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            log = [dict(a._mapping) for a in conn.execute(
                rows_of(attempts, org_id).where(attempts.c.delivery_id == str(delivery_id)).order_by(attempts.c.id))]
        return dict(row._mapping) | {"log": log}
