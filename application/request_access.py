"""Authentication and authorisation of one request (or query), from aggregates that are current as
of the log head checked when the request began (adr/0020).

`PromptForge.request_access()` checks the head once (application.log_head) and returns a
`RequestAccess`: verify the credential, then ask the policy (application.policy) for the grant, all
from the access cache (application.access_cache) without another read of the store while nothing
changed. The aggregates it reads are shared and read-only: a command never acts on them; it loads
and authorises again itself (BaseApp.grant)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from application.access_cache import AccessCache
from application.credentials import VerifiedKeys, api_key_principal, verify_session
from application.policy import AccessPolicy, Grant, org_not_found
from application.principal import Principal
from domain.api_key import ApiKey
from domain.errors import NotFound, Unauthenticated
from domain.organisation import Organisation
from domain.permissions import Permission
from domain.session import Session
from domain.user import User

T = TypeVar("T")


def _user_not_found() -> NotFound:
    return NotFound("user not found", code="USER_NOT_FOUND")


def _unknown_session() -> Unauthenticated:
    return Unauthenticated("unknown session", code="SESSION_REVOKED")


class Grants:
    """Grants the policy answered from objects the access cache hands out, reused while those
    objects are the same: per (user, org), the organisation object it was decided from; per
    (API key, org), also the principal object (`VerifiedKeys` hands out the same one while the key's
    object is unchanged). An event for the organisation or the key replaces its object, so a removal
    or demotion is decided again on the next request. Keys issued by keys (legacy) are not kept:
    their grant also reads the issuing keys. Refusals are never kept."""

    def __init__(self, maxsize: int = 10_000):
        self.maxsize = maxsize
        self._lock = threading.Lock()
        #: (kind, principal id, org id) -> (principal object or None, Organisation object, grant)
        self._entries: dict[tuple, tuple[Principal | None, Organisation, Grant]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def grant(self, principal: Principal, org_id: UUID, reads: "AccessReads") -> Grant:
        if principal.api_key_id is not None:
            if not principal.key_issued_by.startswith("user:"):
                return reads.policy.grant(principal, org_id)
            slot, tag = ("key", principal.api_key_id, org_id), principal
        else:
            slot, tag = ("user", principal.user_id, org_id), None
        entry = self._entries.get(slot)
        if entry is not None and entry[0] is tag and reads.org_or_none(org_id) is entry[1]:
            return entry[2]
        grant = reads.policy.grant(principal, org_id)
        with self._lock:
            if slot not in self._entries and len(self._entries) >= self.maxsize:
                self._entries.pop(next(iter(self._entries)))  # the oldest entry
            self._entries[slot] = (tag, grant.org, grant)
        return grant


class AccessReads:
    """The loaders the credential checks and the policy use, over `get(id)` (the access cache's,
    or the repository's where no cache is wired)."""

    def __init__(self, get: Callable[[UUID], Any]):
        self._get = get
        self.policy = AccessPolicy(self.org, self.key_or_none)
        # Over the access cache (its `get` or `peek`), what is derived from its shared objects is
        # remembered by their identity, once per cache; over the repository (a copy per load) not.
        cache = getattr(get, "__self__", None)
        if isinstance(cache, AccessCache):
            self.verified_keys: VerifiedKeys | None = cache.derived.setdefault("verified_keys", VerifiedKeys())
            self.grants: Grants | None = cache.derived.setdefault("grants", Grants())
        else:
            self.verified_keys = self.grants = None

    def _aggregate(self, aggregate_id: UUID, cls: type[T]) -> T | None:
        try:
            aggregate = self._get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, cls) else None

    def org(self, org_id: UUID) -> Organisation:
        org = self._aggregate(org_id, Organisation)
        if org is None:
            raise org_not_found()
        return org

    def org_or_none(self, org_id: UUID) -> Organisation | None:
        return self._aggregate(org_id, Organisation)

    def key_or_none(self, key_id: UUID) -> ApiKey | None:
        return self._aggregate(key_id, ApiKey)

    def user(self, user_id: UUID) -> User:
        user = self._aggregate(user_id, User)
        if user is None:
            raise _user_not_found()
        return user

    def session(self, session_id: UUID) -> Session:
        session = self._aggregate(session_id, Session)
        if session is None:
            raise _unknown_session()
        return session


class RequestAccess:
    """One request's view: every answer reflects at least the events up to `head`."""

    __slots__ = ("_reads", "head")

    def __init__(self, reads: AccessReads, head: int | None):
        self._reads = reads
        #: The log head checked for this request (None where no cache is wired: nothing to check).
        self.head = head

    def api_key(self, raw: str) -> Principal:
        """The key's principal (401 when unknown, wrong or revoked)."""
        reads = self._reads
        if reads.verified_keys is not None:
            return reads.verified_keys.principal(raw, reads.key_or_none)
        return api_key_principal(raw, reads.key_or_none)

    def session(self, session_id: UUID, user_id: UUID) -> None:
        """Raise unless the session is active (not revoked, not cut by logout-all or password change)."""
        verify_session(self._reads.session(session_id), user_id, self._reads.user)

    def grant(self, principal: Principal, org_id: UUID, permission: Permission | None = None) -> Grant:
        """What the principal may do in the org (application.policy); with `permission`, also require
        it (403 otherwise). Outside the principal's tenancy: NotFound. `grant.org` is read-only."""
        reads = self._reads
        grant = reads.grants.grant(principal, org_id, reads) if reads.grants is not None else reads.policy.grant(
            principal, org_id)
        return grant.require(permission) if permission is not None else grant
