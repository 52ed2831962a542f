"""Webhooks: register, list, update, rotate the secret, delete; the delivery log and redelivery.

Every route needs `org:manage`. Deliveries are made by the workers (workers.webhooks); the signing
secret appears only in the create and rotate answers."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from domain.errors import NotFound
from interfaces.http.errors import ApiError
from interfaces.http.deps import ContainerDep, IdempotencyKey, ManageScope, RequestId, command_headers, fresh, parse_id
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.webhooks import (
    AttemptOut, DeliveryOut, DeliveryPage, RedeliveryOut, WebhookChanged, WebhookCreate, WebhookCreated,
    WebhookDeleted, WebhookList, WebhookOut, WebhookSecret, WebhookUpdate,
)

router = APIRouter(prefix="/v1/orgs/{org_id}/webhooks", tags=["webhooks"], responses=ERRORS)


def _hook(value: str):
    return parse_id(value, "WEBHOOK_NOT_FOUND", "webhook")


def _from_aggregate(hook: Any) -> dict[str, Any]:
    return {"id": str(hook.id), "url": hook.url, "events": list(hook.events), "description": hook.description,
            "enabled": hook.enabled, "disabled_reason": hook.disabled_reason, "secret_generation": hook.generation,
            "created_at": hook.created_on, "updated_at": hook.modified_on}


def _from_row(row: dict[str, Any]) -> WebhookOut:
    return WebhookOut(id=row["webhook_id"], url=row["url"], events=row["events"], description=row["description"],
                      enabled=row["enabled"], disabled_reason=row["disabled_reason"],
                      secret_generation=row["generation"], created_at=row["created_at"], updated_at=row["updated_at"])


def _delivery(row: dict[str, Any]) -> DeliveryOut:
    return DeliveryOut(delivery_id=row["delivery_id"], event_id=row["position"], type=row["type"], state=row["state"],
                       attempts=row["attempts"], next_attempt_at=row["next_attempt_at"], created_at=row["created_at"],
                       delivered_at=row["delivered_at"],
                       history=[AttemptOut(**{k: a[k] for k in AttemptOut.model_fields}) for a in row["log"]])


@router.post("", status_code=201, response_model=WebhookCreated, summary="Register a webhook (secret shown once)")
def create_webhook(scope: ManageScope, body: WebhookCreate, response: Response, container: ContainerDep,
                   rid: RequestId, idempotency_key: IdempotencyKey) -> WebhookCreated:
    """Deliveries start with the changes after this one. Verify them with the secret (README,
    "Webhooks"). With an `Idempotency-Key`, a replay answers `secret: null`."""
    result = container.app.create_webhook(scope.principal, scope.org_id, url=body.url, events=body.events,
                                          description=body.description, request_id=rid,
                                          idempotency_key=idempotency_key)
    hook = container.app.get_webhook(scope.principal, scope.org_id, result.id)
    command_headers(response, result.position, result.replayed)
    response.headers["Cache-Control"] = "no-store"
    return WebhookCreated(**_from_aggregate(hook), secret=None if result.replayed else result.data["secret"],
                          position=result.position or 0)


@router.get("", response_model=WebhookList, summary="The organisation's webhooks")
def list_webhooks(scope: ManageScope, _: fresh("webhooks"), container: ContainerDep) -> WebhookList:
    return WebhookList(items=[_from_row(r) for r in container.webhooks.list(str(scope.org_id))])


@router.get("/{webhook_id}", response_model=WebhookOut, summary="One webhook")
def get_webhook(scope: ManageScope, webhook_id: str, _: fresh("webhooks"), container: ContainerDep) -> WebhookOut:
    row = container.webhooks.get(str(scope.org_id), str(_hook(webhook_id)))
    if row is None:
        raise NotFound("webhook not found", code="WEBHOOK_NOT_FOUND")
    return _from_row(row)


@router.patch("/{webhook_id}", response_model=WebhookChanged, summary="Change the URL, events, description; enable")
def update_webhook(scope: ManageScope, webhook_id: str, body: WebhookUpdate, response: Response,
                   container: ContainerDep, rid: RequestId) -> WebhookChanged:
    target = _hook(webhook_id)
    if not body.model_fields_set:
        raise ApiError(422, "EMPTY_PATCH", "give at least one of url, events, description, enabled")
    result = container.app.update_webhook(scope.principal, scope.org_id, target, rid, url=body.url,
                                          events=body.events, description=body.description, enabled=body.enabled)
    command_headers(response, result.position)
    hook = container.app.get_webhook(scope.principal, scope.org_id, target)
    return WebhookChanged(**_from_aggregate(hook), position=result.position)


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookSecret, summary="A new signing secret (shown once)")
def rotate_secret(scope: ManageScope, webhook_id: str, response: Response, container: ContainerDep,
                  rid: RequestId) -> WebhookSecret:
    target = _hook(webhook_id)
    result = container.app.rotate_webhook_secret(scope.principal, scope.org_id, target, rid)
    hook = container.app.get_webhook(scope.principal, scope.org_id, target)
    command_headers(response, result.position)
    response.headers["Cache-Control"] = "no-store"
    return WebhookSecret(id=str(target), secret=result.data["secret"], secret_generation=hook.generation,
                         position=result.position or 0)


@router.delete("/{webhook_id}", response_model=WebhookDeleted, summary="Delete (pending deliveries are cancelled)")
def delete_webhook(scope: ManageScope, webhook_id: str, response: Response, container: ContainerDep,
                   rid: RequestId) -> WebhookDeleted:
    target = _hook(webhook_id)
    result = container.app.delete_webhook(scope.principal, scope.org_id, target, rid)
    command_headers(response, result.position)
    return WebhookDeleted(id=str(target), position=result.position or 0)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage, summary="The delivery log, newest first")
def deliveries(scope: ManageScope, webhook_id: str, container: ContainerDep,
               before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="`next_before` of the previous page")] = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50) -> DeliveryPage:
    target = container.app.get_webhook(scope.principal, scope.org_id, _hook(webhook_id)).id
    rows = container.deliveries.log(str(scope.org_id), str(target), before=before, limit=limit)
    return DeliveryPage(items=[_delivery(r) for r in rows],
                        next_before=rows[-1]["position"] if len(rows) == limit else None)


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryOut, summary="One delivery and its attempts")
def delivery(scope: ManageScope, webhook_id: str, delivery_id: str, container: ContainerDep) -> DeliveryOut:
    return _delivery(_find_delivery(scope, webhook_id, delivery_id, container))


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=RedeliveryOut,
             summary="Send a delivery again, now")
def redeliver(scope: ManageScope, webhook_id: str, delivery_id: str, container: ContainerDep) -> RedeliveryOut:
    """One attempt, made now, with the same id and body (a fresh signature) and logged as manual.
    A pending delivery that succeeds this way is delivered, and the ones queued behind it follow."""
    row = _find_delivery(scope, webhook_id, delivery_id, container)
    outcome = container.dispatcher.redeliver(str(scope.org_id), row["webhook_id"], row)
    return RedeliveryOut(delivery_id=row["delivery_id"], **outcome)


def _find_delivery(scope: Any, webhook_id: str, delivery_id: str, container: Any) -> dict[str, Any]:
    target = container.app.get_webhook(scope.principal, scope.org_id, _hook(webhook_id)).id
    found = container.deliveries.delivery(str(scope.org_id), str(target),
                                          str(parse_id(delivery_id, "DELIVERY_NOT_FOUND", "delivery")))
    if found is None:
        raise NotFound("delivery not found", code="DELIVERY_NOT_FOUND")
    return found
