"""Login throttling with the `limits` library: moving one-minute windows, counted before the password is checked.

Every login attempt is counted atomically *before* its password is verified (`hit()` refuses
once a window is full), so concurrent attempts cannot slip past a limit; a refused attempt is
429 `TOO_MANY_LOGIN_ATTEMPTS` with `Retry-After`, even with the right password, and never
reaches password verification. Three windows, counted in this order, stopping at the first
that refuses (a refused attempt does not count in the windows after it):

1. account at address: `login_attempts_per_minute` (default 10) per (account, client address).
   Someone guessing from one address locks the account *for that address only*; its owner
   still logs in from anywhere else. A successful login clears this window.
2. address: `login_attempts_per_address_per_minute` (default 30) per client address, whatever
   the accounts (password spraying). Successful logins count too: an attempt cannot be told
   apart before its password is checked.
3. account: `ACCOUNT_BACKSTOP_FACTOR` (10) x `login_attempts_per_minute` per account across
   all addresses, against distributed guessing. One address adds at most
   `login_attempts_per_minute` to it (window 1 refuses the rest first), so it takes at least
   ten addresses to lock an account out everywhere.

Keys are hashes of the normalised email and of the address (no emails or addresses in Redis).
Storage: in-memory for the embedded default (one process), Redis when `PROMPTFORGE_REDIS_URL`
is set, so several API workers share the windows. If Redis is unreachable the throttle fails
open (a warning, then quiet for a cooldown): logins stay available and argon2 still slows
guessing. Only storage errors fail open; anything else is a bug and propagates.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter

from interfaces.http.errors import ApiError
from interfaces.http.ratelimit import STORAGE_ERRORS, limiter_storage, storage_error_name
from interfaces.settings import Settings

ACCOUNT_BACKSTOP_FACTOR = 10
log = logging.getLogger("promptforge.http")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]


class LoginThrottle:
    def __init__(self, settings: Settings, cooldown: float = 5.0):
        self.limiter = MovingWindowRateLimiter(limiter_storage(settings))
        per_minute = settings.login_attempts_per_minute
        self.account_address_limit = RateLimitItemPerMinute(per_minute, namespace="pf-login-account-address")
        self.address_limit = RateLimitItemPerMinute(settings.login_attempts_per_address_per_minute,
                                                    namespace="pf-login-address")
        self.account_limit = RateLimitItemPerMinute(per_minute * ACCOUNT_BACKSTOP_FACTOR, namespace="pf-login-account")
        self.cooldown = cooldown
        self._down_until = 0.0

    @staticmethod
    def account_key(email: str) -> str:
        return _digest(email.strip().lower())

    def _windows(self, email: str, address: str) -> tuple[tuple[RateLimitItem, tuple[str, ...]], ...]:
        account, where = self.account_key(email), _digest(address or "unknown")
        return ((self.account_address_limit, (account, where)), (self.address_limit, (where,)),
                (self.account_limit, (account,)))

    def attempt(self, email: str, address: str) -> None:
        """Count one login attempt, before its password is checked; 429 when a window is full."""
        if time.monotonic() < self._down_until:
            return
        for item, identifiers in self._windows(email, address):
            try:
                if self.limiter.hit(item, *identifiers):
                    continue
                reset_at = self.limiter.get_window_stats(item, *identifiers).reset_time
            except STORAGE_ERRORS as exc:
                self._storage_down(exc)
                return
            retry = max(1, math.ceil(reset_at - time.time()))
            raise ApiError(429, "TOO_MANY_LOGIN_ATTEMPTS", "too many login attempts; try again later",
                           {"retry_after_seconds": retry}, headers={"Retry-After": str(retry)})

    def succeeded(self, email: str, address: str) -> None:
        """The password was right: clear the account's window for this address (not the others)."""
        if time.monotonic() < self._down_until:
            return
        item, identifiers = self._windows(email, address)[0]
        try:
            self.limiter.clear(item, *identifiers)
        except STORAGE_ERRORS as exc:
            self._storage_down(exc)

    def _storage_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.cooldown
        log.warning("login throttle storage unavailable (%s); failing open for %.0f s",
                    storage_error_name(exc), self.cooldown)
