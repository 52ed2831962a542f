"""Access and refresh tokens (PyJWT, HS256 pinned on decode).

Access token: short-lived, claims iss, aud, sub (user id), sid (session id), exp, iat, jti,
typ="access". It is checked per request, and its session is checked active against the
Session aggregate (strongly consistent), so logout takes effect on the next request.

Refresh token: opaque to clients; internally a JWT with typ="refresh", its own audience, and
the session id + generation. Rotation and reuse detection live in the application.

A token's lifetime (`exp - iat`) may not exceed the configured TTL of its kind (plus
`LEEWAY_SECONDS`): a correctly signed token minted with a longer one (say with a leaked or the
published development secret, valid for ten years) is refused with 401 `INVALID_TOKEN`. PyJWT
already refuses an `iat` in the future, so an accepted token never outlives now + TTL (+ leeway).
Lowering a TTL therefore also ends tokens issued under the longer one.

A verified access token is remembered per process (bounded, `VERIFIED_TOKENS`): its signature and
claims cannot change, so presenting it again only re-checks what time changes, its expiry (as PyJWT
does, with the same leeway). Refused tokens are never remembered.

Running with the development secret (`interfaces.settings.DEV_JWT_SECRET`, in the public source)
logs a WARNING when the service is built: anyone can forge tokens then.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

import jwt

from domain.errors import Unauthenticated
from interfaces.settings import DEV_JWT_SECRET, Settings

ALGORITHM = "HS256"
LEEWAY_SECONDS = 5
MAX_TOKEN_CHARS = 4096
#: Access tokens remembered as verified (adr/0020): enough for every active session of a process.
VERIFIED_TOKENS = 10_000
_ACCESS_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "sid", "typ"]
_REFRESH_CLAIMS = [*_ACCESS_CLAIMS, "gen"]
log = logging.getLogger("promptforge.security")
DEV_SECRET_WARNING = (
    "PROMPTFORGE_JWT_SECRET is not set: tokens are signed with the development secret published in the "
    "source, so anyone who has read it can forge access tokens for any user. Set PROMPTFORGE_JWT_SECRET "
    "to a random value of at least 32 characters (production refuses to start without one)."
)


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    session_id: UUID


@dataclass(frozen=True)
class RefreshClaims:
    user_id: UUID
    session_id: UUID
    generation: int


class TokenService:
    def __init__(self, settings: Settings):
        self.secret = settings.jwt_secret
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.refresh_audience = settings.jwt_audience + ":refresh"
        self.access_ttl = settings.access_token_ttl_seconds
        self.refresh_ttl = settings.refresh_token_ttl_seconds
        if self.secret == DEV_JWT_SECRET:
            log.warning(DEV_SECRET_WARNING)
        self._verified: OrderedDict[str, tuple[AccessClaims, int]] = OrderedDict()
        self._verified_lock = threading.Lock()

    # -- issuing ----------------------------------------------------------------------------
    def _encode(self, claims: dict, audience: str, ttl: int) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": audience, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex, **claims}
        return jwt.encode(payload, self.secret, algorithm=ALGORITHM)

    def access_token(self, user_id: UUID, session_id: UUID) -> str:
        return self._encode({"sub": str(user_id), "sid": str(session_id), "typ": "access"}, self.audience,
                            self.access_ttl)

    def refresh_token(self, user_id: UUID, session_id: UUID, generation: int) -> str:
        return self._encode({"sub": str(user_id), "sid": str(session_id), "gen": generation, "typ": "refresh"},
                            self.refresh_audience, self.refresh_ttl)

    # -- verifying --------------------------------------------------------------------------
    def _decode(self, token: str, audience: str, typ: str, required: list[str], ttl: int) -> dict:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("invalid token", code="INVALID_TOKEN")
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], audience=audience, issuer=self.issuer,
                leeway=LEEWAY_SECONDS, options={"require": required},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired", code="TOKEN_EXPIRED") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthenticated("invalid token", code="INVALID_TOKEN") from None
        if claims.get("typ") != typ or not _lifetime_within(claims, ttl + LEEWAY_SECONDS):
            raise Unauthenticated("invalid token", code="INVALID_TOKEN")
        return claims

    def verify_access(self, token: str) -> AccessClaims:
        with self._verified_lock:
            known = self._verified.get(token)
            if known is not None:
                self._verified.move_to_end(token)
        if known is not None:
            if known[1] <= time.time() - LEEWAY_SECONDS:  # PyJWT's expiry check, same leeway
                with self._verified_lock:
                    self._verified.pop(token, None)
                raise Unauthenticated("token has expired", code="TOKEN_EXPIRED")
            return known[0]
        claims = self._decode(token, self.audience, "access", _ACCESS_CLAIMS, self.access_ttl)
        verified = AccessClaims(_uuid(claims["sub"]), _uuid(claims["sid"]))
        with self._verified_lock:
            self._verified[token] = (verified, int(claims["exp"]))
            while len(self._verified) > VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return verified

    def verify_refresh(self, token: str) -> RefreshClaims:
        claims = self._decode(token, self.refresh_audience, "refresh", _REFRESH_CLAIMS, self.refresh_ttl)
        generation = claims["gen"]
        if not isinstance(generation, int) or isinstance(generation, bool) or not 0 <= generation < 2**31:
            raise Unauthenticated("invalid refresh token", code="INVALID_TOKEN")
        return RefreshClaims(_uuid(claims["sub"]), _uuid(claims["sid"]), generation)


def _lifetime_within(claims: dict, seconds: int) -> bool:
    """`exp - iat` at most `seconds` (both claims are required and were parsed like this by PyJWT)."""
    try:
        return int(claims["exp"]) - int(claims["iat"]) <= seconds
    except (KeyError, ValueError, TypeError, OverflowError):
        return False


def _uuid(value: object) -> UUID:
    try:
        return UUID(str(value))
    except (ValueError, TypeError):
        raise Unauthenticated("invalid token", code="INVALID_TOKEN") from None
