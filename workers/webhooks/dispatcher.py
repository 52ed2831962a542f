"""From the change feed to receivers: create each delivery once, send each webhook's in order.

Two steps (adr/0016):
- `enqueue()`: for every enabled webhook, read the org's changes after the webhook's cursor, keep
  the subscribed types, and create their deliveries while moving the cursor, in one transaction
  guarded by compare-and-set on the cursor: a delivery is created once per change and webhook, even
  with several workers.
- `deliver(webhook_id)`: under the webhook's writer lock, send its oldest pending delivery, then the
  next, until one fails (it is retried later, with backoff: the others wait behind it, so order is
  kept) or none is due. After `max_consecutive_failures` failures, or failing for longer than the
  budget, the webhook is disabled by the system (an audited event) and keeps its pending deliveries
  for when a member re-enables it.

Receivers dedupe on `PromptForge-Delivery`: delivery is at least once (a crash between the
receiver's 2xx and the log's commit sends it again, with the same id and body)."""
from __future__ import annotations

import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from uuid import UUID

from sqlalchemy import Engine

from domain.webhook import MAX_DESCRIPTION
from projections.base import json_safe
from projections.writer_lock import WriterLock
from workers.webhooks import sender
from workers.webhooks.store import DeliveryStore

log = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("5b0c4d8e-7f3a-4c9e-9a51-2d7c8e1f0a63")
ENQUEUE_BATCH = 500


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_seconds: float = sender.TIMEOUT_SECONDS
    retry_base_seconds: float = 10.0
    retry_max_seconds: float = 3600.0
    max_consecutive_failures: int = 60
    failure_budget_seconds: float = 86_400.0
    allow_private_networks: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> "DeliveryPolicy":
        return cls(settings.webhook_timeout_seconds, settings.webhook_retry_base_seconds,
                   settings.webhook_retry_max_seconds, settings.webhook_max_consecutive_failures,
                   settings.webhook_failure_budget_seconds, settings.webhooks_allow_private_networks)

    def backoff(self, failures: int, rng: random.Random = random._inst) -> float:
        """Exponential, capped, with jitter over its upper half (never sooner than half the step)."""
        step = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** min(max(0, failures - 1), 64))
        return step / 2 + rng.uniform(0, step / 2)


def delivery_id(webhook_id: str, position: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{webhook_id}:{position}"))


def body(change: dict[str, Any], webhook_id: str, delivery: str) -> str:
    """The JSON a receiver gets: the change as the feed shows it, plus the delivery's ids."""
    fields = ("position", "at", "type", "audience", "prompt_id", "name", "version", "label", "actor", "details")
    document = {"delivery_id": delivery, "webhook_id": webhook_id, "org_id": change["org_id"],
                **{k: json_safe(change[k]) for k in fields}, "at": _instant(change["at"])}
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def subscribed(webhook: dict[str, Any], change_type: str) -> bool:
    return "*" in webhook["events"] or change_type in webhook["events"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they were stored as UTC."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _instant(value: datetime) -> str:
    """RFC 3339 in UTC, as the change feed answers it (`2026-01-02T03:04:05.123456Z`) on every backend."""
    return _aware(value).astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class Dispatcher:
    def __init__(self, app: Any, engine: Engine, store: DeliveryStore, webhooks: Any, changes: Any,
                 policy: DeliveryPolicy, clock: Callable[[], datetime] = _now):
        """`webhooks`: the rm_webhooks read model (which webhooks exist, what they subscribe to);
        `changes`: the change feed read model; `app`: the application (the webhook as it is now,
        its secret, and the system's disabling)."""
        self.app, self.engine, self.store = app, engine, store
        self.webhooks, self.changes, self.policy, self.clock = webhooks, changes, policy, clock

    # -- creating deliveries ----------------------------------------------------------------
    def enqueue(self) -> list[tuple[str, str]]:
        """Create the deliveries of every enabled webhook; returns (webhook_id, delivery_id) created."""
        created: list[tuple[str, str]] = []
        for webhook in self.webhooks.enabled():
            created.extend(self.enqueue_one(webhook))
        return created

    def enqueue_one(self, webhook: dict[str, Any]) -> list[tuple[str, str]]:
        created: list[tuple[str, str]] = []
        while True:
            cursor = self.store.cursor(webhook)
            batch = self.changes.after(webhook["org_id"], cursor["position"], audit=True, limit=ENQUEUE_BATCH)
            if not batch:
                return created
            at = self.clock()
            rows = [{"org_id": webhook["org_id"], "webhook_id": webhook["webhook_id"], "position": c["position"],
                     "delivery_id": (d := delivery_id(webhook["webhook_id"], c["position"])), "type": c["type"],
                     "body": body(c, webhook["webhook_id"], d), "state": "pending", "attempts": 0,
                     "next_attempt_at": None, "created_at": at}
                    for c in batch if subscribed(webhook, c["type"])]
            if not self.store.create(webhook["webhook_id"], cursor["position"], batch[-1]["position"], rows):
                return created  # another worker is creating this webhook's deliveries
            created.extend((r["webhook_id"], r["delivery_id"]) for r in rows)
            if len(batch) < ENQUEUE_BATCH:
                return created

    def due(self) -> list[str]:
        """Webhooks whose next delivery is due, except disabled ones: they keep their deliveries
        for when they are re-enabled, and starting them would only find them disabled, round after
        round (a deleted one is due, so that its pending deliveries get cancelled)."""
        disabled = self.webhooks.disabled()
        return [webhook_id for _, webhook_id in self.store.due(self.clock()) if webhook_id not in disabled]

    # -- sending ------------------------------------------------------------------------------
    def deliver(self, webhook_id: str) -> datetime | None:
        """Send the webhook's due deliveries in order. Returns when to retry the delivery this call
        just failed to send (None: all sent, nothing due, or another worker holds the webhook)."""
        with WriterLock(self.engine, f"webhook:{webhook_id}").hold() as held:
            if not held:
                return None
            while True:
                head = self.store.head(webhook_id)
                if head is None:
                    return None
                due = _aware(head["next_attempt_at"])
                if due is not None and due > self.clock():
                    return None  # its retry is already scheduled (and swept up by the tick)
                found = self.app.webhook_for_delivery(UUID(head["org_id"]), UUID(webhook_id))
                if found is None or found[0].deleted:
                    self.store.cancel(webhook_id)
                    return None
                hook, secret = found
                if not hook.enabled:
                    return None
                retry = self._attempt(hook, secret, head)
                if retry is not None or not hook.enabled:
                    return retry

    def _attempt(self, hook: Any, secret: str, head: dict[str, Any]) -> datetime | None:
        payload = head["body"].encode()
        outcome = sender.deliver(hook.url, payload, self._headers(secret, head, payload),
                                 allow_private=self.policy.allow_private_networks,
                                 timeout=self.policy.timeout_seconds)
        at = self.clock()
        if outcome.ok:
            self.store.attempted(head, ok=True, status_code=outcome.status_code, latency_ms=outcome.latency_ms,
                                 error=None, at=at)
            return None
        failures, since = self.store.failures(head["webhook_id"])
        failures, since = failures + 1, _aware(since) or at
        exhausted = (failures >= self.policy.max_consecutive_failures
                     or (at - since).total_seconds() >= self.policy.failure_budget_seconds)
        retry = None if exhausted else at + timedelta(seconds=self.policy.backoff(failures))
        self.store.attempted(head, ok=False, status_code=outcome.status_code, latency_ms=outcome.latency_ms,
                             error=outcome.error, at=at, next_retry_at=retry, failures=failures, failing_since=since)
        if exhausted:
            reason = (f"disabled after {failures} consecutive failed deliveries over "
                      f"{int((at - since).total_seconds())}s; last error: {outcome.error}")[:MAX_DESCRIPTION]
            self.app.disable_failing_webhook(hook.org_id, hook.id, reason, request_id=f"webhooks:{head['delivery_id']}")
            self.store.reset_failures(head["webhook_id"])
            hook.enabled = False
            log.warning("webhook %s disabled: %s", hook.id, reason)
        return retry

    def redeliver(self, org_id: str, webhook_id: str, delivery: dict[str, Any]) -> dict[str, Any]:
        """A member's manual redelivery: one attempt now, logged as manual. A pending delivery that
        succeeds this way counts as delivered (the queue behind it goes on)."""
        found = self.app.webhook_for_delivery(UUID(org_id), UUID(webhook_id))
        if found is None:
            raise LookupError(webhook_id)
        hook, secret = found
        payload = delivery["body"].encode()
        outcome = sender.deliver(hook.url, payload, self._headers(secret, delivery, payload),
                                 allow_private=self.policy.allow_private_networks,
                                 timeout=self.policy.timeout_seconds)
        number = self.store.attempted(delivery, ok=outcome.ok, status_code=outcome.status_code,
                                      latency_ms=outcome.latency_ms, error=outcome.error, at=self.clock(), manual=True)
        return {"attempt": number, "ok": outcome.ok, "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms, "error": outcome.error}

    @staticmethod
    def _headers(secret: str, delivery: dict[str, Any], payload: bytes) -> dict[str, str]:
        return {"PromptForge-Event-Id": str(delivery["position"]), "PromptForge-Delivery": delivery["delivery_id"],
                "PromptForge-Event": delivery["type"], "PromptForge-Signature": sender.signature(secret, payload)}
