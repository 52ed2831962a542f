"""Login throttling with the `limits` library: a moving window per account and per client address.

Only failed logins count; once a window is exhausted every attempt (even with the right
password) is refused with 429 + Retry-After until the window frees up, so guessing cannot
continue. Storage: in-memory for the embedded default (one process), Redis when
`PROMPTFORGE_REDIS_URL` is set, so several API workers share the counters.

The account key is a hash of the normalised email (no addresses in Redis keys). The per-address
limit is `ADDRESS_FACTOR` times the per-account one, so one NAT'd office is not locked out by a
single user's typos while a password-spraying client still is.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from interfaces.http.errors import ApiError
from interfaces.settings import Settings

ADDRESS_FACTOR = 5
log = logging.getLogger("promptforge.http")


class LoginThrottle:
    def __init__(self, settings: Settings):
        uri = settings.redis_url or "memory://"
        self.limiter = MovingWindowRateLimiter(storage_from_string(uri))
        per_minute = settings.login_attempts_per_minute
        self.account_limit = RateLimitItemPerMinute(per_minute, namespace="pf-login-account")
        self.address_limit = RateLimitItemPerMinute(per_minute * ADDRESS_FACTOR, namespace="pf-login-address")

    @staticmethod
    def _account(email: str) -> str:
        return hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]

    def _pairs(self, email: str, address: str):
        return ((self.account_limit, self._account(email)), (self.address_limit, address or "unknown"))

    def check(self, email: str, address: str) -> None:
        """Raise 429 when either window is exhausted. If the storage (Redis) is unreachable the
        throttle fails open with a warning: logins stay available, argon2 still slows guessing."""
        for item, key in self._pairs(email, address):
            try:
                allowed = self.limiter.test(item, key)
                reset_at = time.time() if allowed else self.limiter.get_window_stats(item, key).reset_time
            except Exception:  # noqa: BLE001 - storage outage
                log.warning("login throttle storage unavailable; failing open", exc_info=True)
                return
            if not allowed:
                retry = max(1, math.ceil(reset_at - time.time()))
                raise ApiError(429, "TOO_MANY_LOGIN_ATTEMPTS", "too many failed logins; try again later",
                               {"retry_after_seconds": retry}, headers={"Retry-After": str(retry)})

    def failed(self, email: str, address: str) -> None:
        for item, key in self._pairs(email, address):
            try:
                self.limiter.hit(item, key)
            except Exception:  # noqa: BLE001 - storage outage
                log.warning("login throttle storage unavailable", exc_info=True)
