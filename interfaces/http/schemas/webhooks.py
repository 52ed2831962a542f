"""Webhooks and their delivery log."""
from __future__ import annotations

from pydantic import ConfigDict, Field, StrictBool

from interfaces.http.schemas.common import Instant, RequestModel, ResponseModel

EVENTS_DOC = ('Change-feed types to deliver (`prompt.revised`, `prompt.label_moved`, `review.requested`, …), '
              'or `["*"]` for all; an unknown type is 422 `INVALID_WEBHOOK_EVENTS`, whose details list them.')


class WebhookCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"url": "https://ci.example.com/hooks/promptforge", "events": ["prompt.label_moved"],
         "description": "redeploy on label moves"}]})
    url: str = Field(max_length=2000, description="Absolute http(s) URL; private addresses need "
                                                  "PROMPTFORGE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS.")
    events: list[str] = Field(min_length=1, max_length=64, description=EVENTS_DOC)
    description: str = Field("", max_length=500)


class WebhookUpdate(RequestModel):
    url: str | None = Field(None, max_length=2000)
    events: list[str] | None = Field(None, min_length=1, max_length=64, description=EVENTS_DOC)
    description: str | None = Field(None, max_length=500)
    enabled: StrictBool | None = Field(None, description="Re-enable a disabled webhook (its pending deliveries resume, "
                                                   "in order), or pause one.")


class WebhookOut(ResponseModel):
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str = Field(description="Why it was disabled (by a member, or after the failure budget).")
    secret_generation: int = Field(description="Bumped by each rotation.")
    created_at: Instant
    updated_at: Instant


class WebhookCreated(WebhookOut):
    secret: str | None = Field(description=(
        "The signing secret, shown in this response only (null on an Idempotency-Key replay); "
        "rotate it to get a new one."))
    position: int


class WebhookChanged(WebhookOut):
    position: int | None = Field(description="The command's log position (null when nothing changed).")


class WebhookList(ResponseModel):
    items: list[WebhookOut]


class WebhookSecret(ResponseModel):
    id: str
    secret: str = Field(description="The new signing secret, shown once; the old one stops signing at once.")
    secret_generation: int
    position: int


class WebhookDeleted(ResponseModel):
    id: str
    position: int


class AttemptOut(ResponseModel):
    attempt: int
    manual: bool = Field(description="A member's redelivery (it does not count against the failure budget).")
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    next_retry_at: Instant | None
    attempted_at: Instant


class DeliveryOut(ResponseModel):
    delivery_id: str = Field(description="`PromptForge-Delivery`: the same on every attempt; dedupe on it.")
    event_id: int = Field(description="`PromptForge-Event-Id`: the change's log position.")
    type: str
    state: str = Field(description="pending | delivered | cancelled (the webhook was deleted before it went out)")
    attempts: int
    next_attempt_at: Instant | None
    created_at: Instant
    delivered_at: Instant | None
    history: list[AttemptOut]


class DeliveryPage(ResponseModel):
    items: list[DeliveryOut]
    next_before: int | None = Field(description="Pass as `before` for older deliveries (null: no more).")


class RedeliveryOut(ResponseModel):
    delivery_id: str
    attempt: int
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None
