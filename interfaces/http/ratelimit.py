"""Request rate limits (the `limits` library, fixed one-minute windows), `settings.rate_limit_per_minute`:

- per API key / per user: counted once the bearer credential is verified (`deps._authenticate`);
- per organisation: counted once the caller is authorised in `{org_id}` (`deps.org_scope`), so
  nobody outside a tenant can spend its budget;
- per client address: requests without credentials, and requests whose credentials are refused
  (so guessing keys or tokens is limited too).

Storage: memory (one process, the embedded default) or Redis when `PROMPTFORGE_REDIS_URL` is set,
shared by every API worker. If Redis is unreachable the limiter fails open (logged, then quiet for a
cooldown): availability of the API beats strict limits. Only storage errors (`STORAGE_ERRORS`) fail
open; any other exception is a bug and propagates (a 500, logged with its traceback).

Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
(IETF draft names; the most constrained bucket of the request); a refusal is 429 with
`Retry-After` as well.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from interfaces.http.errors import ApiError
from interfaces.settings import Settings

log = logging.getLogger("promptforge.http")
STATE_KEY = "rate_limit"
#: Never limited: probes and scrapes must keep working under load.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: What an unreachable limiter storage raises. `limiter_storage` builds the Redis storage with
#: `wrap_exceptions=True`, so `limits` re-raises the client's errors (redis.exceptions.RedisError:
#: ConnectionError, TimeoutError, ...) as StorageError; the built-in socket errors are listed in case
#: one escapes unwrapped. Programming errors (TypeError, KeyError, ...) are not in this list.
STORAGE_ERRORS: tuple[type[Exception], ...] = (StorageError, ConnectionError, TimeoutError)


def limiter_storage(settings: Settings) -> Storage:
    """Redis (shared, short socket timeouts: a dead Redis must not hang requests) or process memory."""
    if settings.redis_url:
        return storage_from_string(settings.redis_url, wrap_exceptions=True, socket_connect_timeout=0.5,
                                   socket_timeout=1.0)
    return storage_from_string("memory://")


def storage_error_name(exc: BaseException) -> str:
    """The class name of the underlying error (never its message: it may carry the Redis URL)."""
    inner = getattr(exc, "storage_error", None) if isinstance(exc, StorageError) else None
    return type(inner or exc).__name__


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset_seconds: int
    allowed: bool = True

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset_seconds)}


class RateLimiter:
    def __init__(self, settings: Settings, cooldown: float = 5.0):
        self.limiter = FixedWindowRateLimiter(limiter_storage(settings))
        self.per_minute = settings.rate_limit_per_minute
        self.items = {kind: RateLimitItemPerMinute(self.per_minute, namespace=f"pf-rl-{kind}")
                      for kind in ("key", "user", "org", "addr")}
        self.cooldown = cooldown
        self._down_until = 0.0

    def hit(self, kind: str, key: str) -> Quota | None:
        """Count one request against a bucket; None when the storage is down (fail open)."""
        if time.monotonic() < self._down_until:
            return None
        item = self.items[kind]
        try:
            allowed = self.limiter.hit(item, key)
            stats = self.limiter.get_window_stats(item, key)
        except STORAGE_ERRORS as exc:
            self._down_until = time.monotonic() + self.cooldown
            log.warning("rate-limit storage unavailable (%s); failing open for %.0f s", storage_error_name(exc),
                        self.cooldown)
            return None
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Quota(self.per_minute, stats.remaining if allowed else 0, reset, allowed)


def apply(state, limiter: RateLimiter, kind: str, key: str) -> None:
    """Count the request in one bucket, remember the most constrained quota for the response
    headers (`state` is request.state or the ASGI scope's state dict), and refuse with 429."""
    quota = limiter.hit(kind, key)
    if quota is None:
        return
    current = state.get(STATE_KEY) if isinstance(state, dict) else getattr(state, STATE_KEY, None)
    if current is None or quota.remaining < current.remaining:
        if isinstance(state, dict):
            state[STATE_KEY] = quota
        else:
            setattr(state, STATE_KEY, quota)
    if not quota.allowed:
        raise too_many(quota)


def too_many(quota: Quota) -> ApiError:
    return ApiError(429, "RATE_LIMITED", "too many requests; slow down",
                    {"retry_after_seconds": quota.reset_seconds, "limit_per_minute": quota.limit},
                    headers={"Retry-After": str(quota.reset_seconds), **quota.headers()})
