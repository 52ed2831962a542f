"""Webhook commands: register, update, rotate the secret, delete; and the system's disabling of a
webhook whose receiver keeps failing (workers.webhooks). All need org:manage and are audited."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit
from uuid import UUID

from application.base import BaseApp
from application.commands import command
from application.principal import Principal
from application.results import CommandResult
from application.security import webhook_secret
from domain.base import acting
from domain.errors import Invalid, NotFound
from domain.permissions import Permission
from domain.webhook import Webhook, clean_url

SYSTEM_ACTOR = "system:webhooks"


def webhook_not_found() -> NotFound:
    return NotFound("webhook not found", code="WEBHOOK_NOT_FOUND")


class WebhookCommands(BaseApp):
    #: Set by the composition root (application.security.derive_webhook_key).
    webhook_key: bytes = b""
    #: Set by the composition root (PROMPTFORGE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS).
    allow_private_webhooks: bool = False

    def signing_secret(self, webhook: Webhook) -> str:
        if not self.webhook_key:
            raise RuntimeError("the webhook key is not configured")
        return webhook_secret(self.webhook_key, webhook.id, webhook.generation)

    @command
    def create_webhook(self, principal: Principal, org_id: UUID, *, url: str, events: list[str], description: str = "",
                       request_id: str, idempotency_key: str | None = None) -> CommandResult:
        """`data["secret"]` is the signing secret: shown in this answer only (a replay answers None)."""
        self.grant(principal, org_id, Permission.ORG_MANAGE)
        webhook_id, fingerprint, replay = self._idempotent(principal, f"org:{org_id}:webhooks", idempotency_key,
                                                           {"url": url, "events": sorted(events), "description": description})
        if replay:
            return replay
        self._check_destination(url)
        hook = Webhook.create(webhook_id, org_id, url, events, description, request_hash=fingerprint)
        return CommandResult(hook.id, self._save(hook), data={"secret": self.signing_secret(hook)})

    @command
    def update_webhook(self, principal: Principal, org_id: UUID, webhook_id: UUID, request_id: str, *,
                       url: str | None = None, events: list[str] | None = None, description: str | None = None,
                       enabled: bool | None = None) -> CommandResult:
        self.grant(principal, org_id, Permission.ORG_MANAGE)
        hook = self._webhook(org_id, webhook_id)
        self._check_destination(url)
        hook.update(url, events, description)
        if enabled is True:
            hook.enable()
        elif enabled is False:
            hook.disable("disabled by a member")
        return CommandResult(webhook_id, self._save(hook))

    @command
    def rotate_webhook_secret(self, principal: Principal, org_id: UUID, webhook_id: UUID, request_id: str) -> CommandResult:
        self.grant(principal, org_id, Permission.ORG_MANAGE)
        hook = self._webhook(org_id, webhook_id)
        hook.rotate_secret()
        return CommandResult(webhook_id, self._save(hook), data={"secret": self.signing_secret(hook)})

    @command
    def delete_webhook(self, principal: Principal, org_id: UUID, webhook_id: UUID, request_id: str) -> CommandResult:
        self.grant(principal, org_id, Permission.ORG_MANAGE)
        hook = self._webhook(org_id, webhook_id)
        hook.delete()
        return CommandResult(webhook_id, self._save(hook))

    def get_webhook(self, principal: Principal, org_id: UUID, webhook_id: UUID) -> Webhook:
        self.grant(principal, org_id, Permission.ORG_MANAGE)
        return self._webhook(org_id, webhook_id)

    @command
    def disable_failing_webhook(self, org_id: UUID, webhook_id: UUID, reason: str, request_id: str) -> CommandResult:
        """The delivery worker's decision after the failure budget: recorded as the system's."""
        with acting(SYSTEM_ACTOR, request_id):
            hook = self._webhook(org_id, webhook_id, deleted=True)
            if not hook.enabled or hook.deleted:
                return CommandResult(webhook_id, None)
            hook.disable(reason)
        return CommandResult(webhook_id, self._save(hook))

    def webhook_for_delivery(self, org_id: UUID, webhook_id: UUID) -> tuple[Webhook, str] | None:
        """The webhook as it is now and its current secret, for the delivery worker (None if gone)."""
        try:
            hook = self._webhook(org_id, webhook_id, deleted=True)
        except NotFound:
            return None
        return hook, self.signing_secret(hook)

    def _webhook(self, org_id: UUID, webhook_id: UUID, *, deleted: bool = False) -> Webhook:
        """The org's webhook; a deleted one is not found (unless `deleted`)."""
        hook = self._load(webhook_id, Webhook, webhook_not_found)
        if hook.org_id != org_id or (hook.deleted and not deleted):
            raise webhook_not_found()
        return hook

    def _check_destination(self, url: str | None) -> None:
        """A literal private address is refused at once (names are checked at each delivery)."""
        if url is None or self.allow_private_webhooks:
            return
        host = (urlsplit(clean_url(url)).hostname or "").rstrip(".").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost" or host.endswith(".localhost"):
                raise Invalid("url points at this machine; private destinations are not allowed here",
                              code="INVALID_WEBHOOK_URL") from None
            return
        if not address.is_global or address.is_multicast:
            raise Invalid("url points at a non-public address; set PROMPTFORGE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS "
                          "to allow private destinations", code="INVALID_WEBHOOK_URL")
