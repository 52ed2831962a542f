"""Webhooks: an organisation's subscriptions to its change feed, delivered to an HTTP endpoint.

The signing secret is never stored: it is derived from the server's webhook key, the webhook's id
and its secret generation (application.webhooks), so rotating is an event that bumps the
generation, and no event or read model ever holds a secret."""
from __future__ import annotations

from urllib.parse import urlsplit
from uuid import UUID

from domain.base import AuditedAggregate
from domain.errors import Conflict, Invalid
from domain.values import clean_message

#: The change-feed vocabulary (projections.vocabulary maps event classes onto these names).
CHANGE_TYPES = (
    "prompt.created", "prompt.revised", "prompt.label_moved", "prompt.label_removed", "prompt.archived",
    "prompt.restored", "prompt.renamed", "review.requested", "review.approved", "review.rejected", "review.withdrawn",
    "review.applied", "review.superseded", "release.applied", "release.rolled_back", "organisation.created",
    "organisation.renamed", "organisation.plan_changed", "organisation.protected_labels_changed", "member.added",
    "member.role_changed", "member.removed", "api_key.issued", "api_key.revoked", "webhook.created",
    "webhook.updated", "webhook.secret_rotated", "webhook.disabled", "webhook.enabled", "webhook.deleted",
)
MAX_URL = 2000
MAX_DESCRIPTION = 500


def clean_url(url: str) -> str:
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL:
        raise Invalid(f"url must be 1..{MAX_URL} characters", code="INVALID_WEBHOOK_URL")
    value = url.strip()
    try:
        parts = urlsplit(value)
        port = parts.port  # raises for a port that is not a number in 0..65535
    except ValueError:
        raise Invalid("url is not a valid URL (its host or port cannot be parsed)",
                      code="INVALID_WEBHOOK_URL") from None
    if port == 0:
        raise Invalid("url has no usable port", code="INVALID_WEBHOOK_URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("url must be an absolute http(s) URL", code="INVALID_WEBHOOK_URL")
    if parts.username or parts.password:
        raise Invalid("url may not carry credentials: the signature authenticates deliveries",
                      code="INVALID_WEBHOOK_URL")
    if any(c.isspace() or not c.isprintable() for c in value):  # control (incl. DEL), format, separators
        raise Invalid("url may not contain spaces or control characters", code="INVALID_WEBHOOK_URL")
    return value


def clean_events(events: list[str]) -> list[str]:
    if not isinstance(events, list) or not events:
        raise Invalid('events lists at least one change type (or "*" for all)', code="INVALID_WEBHOOK_EVENTS")
    cleaned = sorted({str(e).strip() for e in events})
    unknown = [e for e in cleaned if e != "*" and e not in CHANGE_TYPES]
    if unknown:
        raise Invalid("unknown change types", code="INVALID_WEBHOOK_EVENTS",
                      details={"unknown": unknown, "allowed": ["*", *CHANGE_TYPES]})
    return ["*"] if "*" in cleaned else cleaned


class Webhook(AuditedAggregate):
    class Created(AuditedAggregate.Created):
        org_id: UUID
        url: str
        events: list[str]
        description: str
        request_hash: str

        def apply(self, hook: "Webhook") -> None:
            hook.org_id = self.org_id
            hook.request_hash = self.request_hash
            hook.url = self.url
            hook.events = list(self.events)
            hook.description = self.description
            hook.generation = 1
            hook.enabled = True
            hook.deleted = False
            hook.disabled_reason = ""

    class Updated(AuditedAggregate.Event):
        org_id: UUID
        url: str
        events: list[str]
        description: str

        def apply(self, hook: "Webhook") -> None:
            hook.url, hook.events, hook.description = self.url, list(self.events), self.description

    class SecretRotated(AuditedAggregate.Event):
        org_id: UUID
        generation: int

        def apply(self, hook: "Webhook") -> None:
            hook.generation = self.generation

    class Disabled(AuditedAggregate.Event):
        org_id: UUID
        reason: str

        def apply(self, hook: "Webhook") -> None:
            hook.enabled = False
            hook.disabled_reason = self.reason

    class Enabled(AuditedAggregate.Event):
        org_id: UUID

        def apply(self, hook: "Webhook") -> None:
            hook.enabled = True
            hook.disabled_reason = ""

    class Deleted(AuditedAggregate.Event):
        org_id: UUID

        def apply(self, hook: "Webhook") -> None:
            hook.deleted = True
            hook.enabled = False

    @classmethod
    def create(cls, id: UUID, org_id: UUID, url: str, events: list[str], description: str = "",
               request_hash: str = "") -> "Webhook":
        return cls._create(cls.Created, id=id, org_id=org_id, url=clean_url(url), events=clean_events(events),
                           description=_description(description), request_hash=request_hash)

    def update(self, url: str | None = None, events: list[str] | None = None, description: str | None = None) -> None:
        self._require_live()
        new = (clean_url(url) if url is not None else self.url, clean_events(events) if events is not None else self.events,
               _description(description) if description is not None else self.description)
        if new != (self.url, self.events, self.description):
            self.trigger_event(self.Updated, org_id=self.org_id, url=new[0], events=new[1], description=new[2])

    def rotate_secret(self) -> int:
        self._require_live()
        self.trigger_event(self.SecretRotated, org_id=self.org_id, generation=self.generation + 1)
        return self.generation

    def disable(self, reason: str) -> None:
        self._require_live()
        if self.enabled:
            self.trigger_event(self.Disabled, org_id=self.org_id, reason=_description(reason))

    def enable(self) -> None:
        self._require_live()
        if not self.enabled:
            self.trigger_event(self.Enabled, org_id=self.org_id)

    def delete(self) -> None:
        self._require_live()
        self.trigger_event(self.Deleted, org_id=self.org_id)

    def _require_live(self) -> None:
        if self.deleted:
            raise Conflict("the webhook was deleted", code="WEBHOOK_DELETED")


def _description(text: str) -> str:
    value = clean_message(text or "")
    if len(value) > MAX_DESCRIPTION:
        raise Invalid(f"description must be at most {MAX_DESCRIPTION} characters", code="INVALID_MESSAGE")
    return value
