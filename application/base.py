"""Shared machinery of the command methods: loading, authorising, saving with retry."""
from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from application.principal import Principal
from application.results import CommandResult
from domain.errors import Conflict, Forbidden, NotFound
from domain.ids import idempotent_id
from domain.organisation import Organisation
from domain.permissions import ROLE_PERMISSIONS, Permission, Role

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_ATTEMPTS = 30


def request_fingerprint(payload: dict[str, Any]) -> str:
    """Stable hash of a command's input, kept with idempotently created aggregates."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class BaseApp(Application[UUID]):
    """eventsourcing Application plus post-commit listeners and authorisation helpers."""

    snapshotting_intervals = {Organisation: 100}

    def __init__(self, env: dict[str, str] | None = None):
        super().__init__(env)
        self._listeners: list[Callable[[int], None]] = []
        self._listeners_lock = threading.Lock()

    # -- post-commit nudges -----------------------------------------------------------------
    def add_commit_listener(self, listener: Callable[[int], None]) -> None:
        """Called with the last position after every committed save (never before the commit)."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def _notify(self, recordings) -> None:  # eventsourcing hook, runs after the commit
        if not recordings:
            return
        position = recordings[-1].notification.id
        for listener in list(self._listeners):
            try:
                listener(position)
            except Exception:  # a nudge is best-effort: events are already durable
                log.warning("commit listener failed", exc_info=True)

    # -- helpers ----------------------------------------------------------------------------
    def head_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def _save(self, *aggregates) -> int | None:
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def _load(self, aggregate_id: UUID, cls: type[T], not_found: NotFound) -> T:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise not_found from None
        if not isinstance(aggregate, cls):
            raise not_found
        return aggregate

    def _exists(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.repository

    def _org(self, org_id: UUID) -> Organisation:
        return self._load(org_id, Organisation, NotFound("organisation not found", code="ORG_NOT_FOUND"))

    def _authorize(self, principal: Principal, org_id: UUID, permission: Permission) -> tuple[Organisation, Role | None]:
        """Load the organisation and check the principal's permission in it.

        Users: role from the Organisation aggregate (strongly consistent). API keys: only their
        own org, only their permissions. Anything outside the principal's tenancy is NotFound."""
        if principal.api_key_id is not None:
            if principal.key_org_id != org_id:
                raise NotFound("organisation not found", code="ORG_NOT_FOUND")
            org = self._org(org_id)
            if permission.value not in principal.key_permissions:
                raise Forbidden(
                    f"API key lacks permission {permission.value!r}", code="PERMISSION_DENIED",
                    details={"required": permission.value},
                )
            return org, None
        org = self._org(org_id)
        return org, org.require(principal.user_id, permission)

    def permissions_of(self, principal: Principal, org_id: UUID) -> frozenset[str]:
        if principal.api_key_id is not None:
            return principal.key_permissions if principal.key_org_id == org_id else frozenset()
        role = self._org(org_id).role_of(principal.user_id)
        return frozenset(p.value for p in ROLE_PERMISSIONS[role]) if role else frozenset()

    def _idempotent(
        self, principal: Principal, scope: str, key: str | None, payload: dict[str, Any]
    ) -> tuple[UUID, str, CommandResult | None]:
        """(new aggregate id, request fingerprint, replayed result or None).

        With an Idempotency-Key the id is derived from (actor, scope, key): a retry finds the
        aggregate it created and is answered from it; the same key with another body conflicts."""
        fingerprint = request_fingerprint(payload)
        if not key:
            return uuid4(), fingerprint, None
        aggregate_id = idempotent_id(principal.actor, scope, key)
        try:
            existing = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return aggregate_id, fingerprint, None
        if getattr(existing, "request_hash", None) != fingerprint:
            raise Conflict("Idempotency-Key was used with a different request", code="IDEMPOTENCY_KEY_REUSED")
        version = 1 if hasattr(existing, "versions") else None  # the original response named version 1
        return aggregate_id, fingerprint, CommandResult(aggregate_id, self.head_position(), version, replayed=True)

    def _retrying(self, command: Callable[[], T]) -> T:
        """Run a load-decide-save command, re-running it when a concurrent save won the race.

        A retry reloads every aggregate, so a stale revision then fails with the domain's own
        conflict error, while an unrelated race (e.g. on the org's plan counters, which every
        prompt creation in the org touches) succeeds on a later attempt."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                return command()
            except IntegrityError:
                if attempt == MAX_ATTEMPTS - 1:
                    raise Conflict("too much contention, try again", code="CONCURRENT_MODIFICATION") from None
                # Jittered exponential backoff (capped at 50 ms) spreads colliding writers out.
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise AssertionError("unreachable")
