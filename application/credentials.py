"""Verifying credentials against aggregate state, whoever loads the aggregates: the application's
repository (commands) or the per-request access cache (application.request_access). Only checks
the credential; what the principal may do is the access policy's answer."""
from __future__ import annotations

import hashlib
import secrets
import threading
from uuid import UUID

from domain.api_key import ApiKey
from domain.errors import Unauthenticated
from domain.session import Session
from domain.user import User

from application.principal import Principal
from application.security import parse_api_key, secret_matches


def invalid_key() -> Unauthenticated:
    """A fresh exception per refusal: a shared instance would keep every traceback it was raised
    with (memory grew ~13 KB per bad-key request)."""
    return Unauthenticated("invalid API key", code="INVALID_API_KEY")


def session_revoked() -> Unauthenticated:
    return Unauthenticated("session is no longer active", code="SESSION_REVOKED")


class VerifiedKeys:
    """Raw API keys already verified against an ApiKey object the access cache hands out
    (application.access_cache), and the principal that check answered. A raw key is recognised by a
    keyed digest (BLAKE2b under a random per-process key: the raw key itself is never kept), and its
    answer is reused only while `load_key(id)` hands out **the same object** it was verified against.
    The cache replaces that object whenever any event for the key is seen (a revocation included),
    before the head that includes it is published, so the next request verifies again against the
    new state (adr/0020's guarantee is unchanged). Refusals are never remembered.

    Only useful over a source that hands out shared objects (the access cache): over the repository
    every load is a new copy and nothing would ever be reused."""

    def __init__(self, maxsize: int = 10_000):
        self.maxsize = maxsize
        self._digest_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        #: keyed digest of the raw key -> (key id, the ApiKey object it was verified against, principal)
        self._entries: dict[bytes, tuple[UUID, ApiKey, Principal]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _digest(self, raw: str) -> bytes:
        return hashlib.blake2b(raw.encode(), key=self._digest_key, digest_size=32).digest()

    def principal(self, raw: str, load_key) -> Principal:
        """`api_key_principal(raw, load_key)`, without verifying again while the key's object is
        the one this raw key was verified against."""
        digest = self._digest(raw)
        entry = self._entries.get(digest)
        if entry is not None and load_key(entry[0]) is entry[1]:
            return entry[2]
        loaded: list[ApiKey | None] = []

        def load_and_keep(key_id: UUID) -> ApiKey | None:
            key = load_key(key_id)
            loaded.append(key)
            return key

        principal = api_key_principal(raw, load_and_keep)
        with self._lock:
            if digest not in self._entries and len(self._entries) >= self.maxsize:
                self._entries.pop(next(iter(self._entries)))  # the oldest entry
            self._entries[digest] = (principal.api_key_id, loaded[0], principal)
        return principal


def api_key_principal(raw: str, load_key) -> Principal:
    """The principal of a raw API key; `load_key(id)` returns the ApiKey aggregate or None."""
    parsed = parse_api_key(raw)
    if parsed is None:
        raise invalid_key()
    key_id, secret = parsed
    key: ApiKey | None = load_key(key_id)
    if key is None or not secret_matches(secret, key.secret_hash):
        raise invalid_key()
    if key.revoked:
        raise Unauthenticated("API key has been revoked", code="API_KEY_REVOKED")
    return Principal.api_key(key.id, key.org_id, frozenset(key.permissions), key.issued_by)


def verify_session(session: Session, user_id, load_user) -> None:
    """Raise unless the session is the user's and active (not revoked, not cut by logout-all or a
    password change). `load_user(id)` returns the User aggregate (or raises NotFound)."""
    if session.user_id != user_id:
        raise session_revoked()
    user: User = load_user(user_id)
    if not session.is_active(user.session_epoch):
        raise session_revoked()
