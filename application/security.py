"""Password hashing (argon2id) and API-key secrets (high-entropy, SHA-256 at rest)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.errors import Invalid

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
#: Verified against when an email is unknown, so timing does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password-" + secrets.token_hex(8))


def check_password_policy(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise Invalid(f"password must be at least {MIN_PASSWORD} characters", code="WEAK_PASSWORD")
    if len(password) > MAX_PASSWORD:
        raise Invalid(f"password must be at most {MAX_PASSWORD} characters", code="WEAK_PASSWORD")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


KEY_SCHEME = "pfk"


def new_api_key(key_id: UUID) -> tuple[str, str, str]:
    """(raw key shown once, visible prefix, hash stored). The key id is embedded so lookup is O(1);
    the 256-bit secret makes a slow hash unnecessary (nothing to brute-force)."""
    secret = secrets.token_urlsafe(32)
    raw = f"{KEY_SCHEME}_{key_id.hex}_{secret}"
    return raw, key_prefix(key_id), hash_secret(secret)


def key_prefix(key_id: UUID) -> str:
    """The visible prefix an API key is listed by (not a secret: the first 8 hex of its id)."""
    return f"{KEY_SCHEME}_{key_id.hex[:8]}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(raw: str) -> tuple[UUID, str] | None:
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 32:
        return None
    try:
        return UUID(hex=parts[1]), parts[2]
    except ValueError:
        return None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_SCHEME + "_")


WEBHOOK_SECRET_PREFIX = "whsec_"


def webhook_secret(key: bytes, webhook_id: UUID, generation: int) -> str:
    """A webhook's signing secret, derived (never stored): HMAC-SHA256 of the server's webhook key
    over the webhook id and its secret generation. Rotating bumps the generation."""
    digest = hmac.new(key, f"{webhook_id}:{generation}".encode(), hashlib.sha256).digest()
    return WEBHOOK_SECRET_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def derive_webhook_key(secret: str) -> bytes:
    """The webhook key from a configured secret (PROMPTFORGE_WEBHOOK_KEY, else the JWT secret)."""
    return hmac.new(secret.encode(), b"promptforge webhook signing secrets v1", hashlib.sha256).digest()
