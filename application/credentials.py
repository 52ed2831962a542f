"""Verifying credentials against aggregate state, whoever loads the aggregates: the application's
repository (commands) or the per-request access cache (application.request_access). Only checks
the credential; what the principal may do is the access policy's answer."""
from __future__ import annotations

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
