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

Cost (adr/0020): a hit is one storage call per bucket (Redis: one round trip running the library's
INCR+EXPIRE script); the window's end is remembered per bucket once read; a key or user bucket and
the organisation's are counted in one round trip (`hit_pair`); the in-memory storage starts no timer
thread (`WindowMemoryStorage`). On the event loop (the hot path's fast route), Redis is counted
through redis.asyncio (`hit_async`, `hit_pair_async`: the same keys and scripts, so both paths
count in the same buckets), without a thread hop. With a large limit (at least 2,000/min), the key,
user and organisation buckets are counted there a lease at a time (adr/0023: `lease` = limit // 1000
hits taken from Redis at once, at most 32, spent locally; never more than the limit admitted, a
request refused at most (processes - 1) x (lease - 1) hits early; client addresses stay exact).

Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
(IETF draft names; the most constrained bucket of the request); a refusal is 429 with
`Retry-After` as well.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage, storage_from_string
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


#: Two fixed-window buckets in one round trip (same keys, INCR and EXPIRE as the library's own
#: `incr_expire.lua`): the second is counted only while the first allows the request, as two hits
#: in a row would (a request refused per key does not spend its organisation's budget).
PAIR_SCRIPT = """
local expiry = tonumber(ARGV[1])
local first = redis.call("incrby", KEYS[1], 1)
if first == 1 then redis.call("expire", KEYS[1], expiry) end
if first > tonumber(ARGV[2]) then return {first, 0} end
local second = redis.call("incrby", KEYS[2], 1)
if second == 1 then redis.call("expire", KEYS[2], expiry) end
return {first, second}
"""


#: One bucket, as the library's `incr_expire.lua` counts it (for `hit_async`).
SINGLE_SCRIPT = """
local current = redis.call("incrby", KEYS[1], 1)
if current == 1 then redis.call("expire", KEYS[1], tonumber(ARGV[1])) end
return current
"""


#: One bucket's lease (adr/0023): take up to ARGV[3] hits at once while at least that many remain
#: in the window, else one (exact near the limit, and a refused request counts once, as
#: SINGLE_SCRIPT counts it); answers the count after, the hits taken and the window's end (PTTL ms).
LEASE_SCRIPT = """
local take = tonumber(ARGV[3])
if tonumber(ARGV[2]) - tonumber(redis.call("get", KEYS[1]) or "0") < take then take = 1 end
local count = redis.call("incrby", KEYS[1], take)
if count == take then redis.call("expire", KEYS[1], tonumber(ARGV[1])) end
return {count, take, redis.call("pttl", KEYS[1])}
"""


def limiter_storage(settings: Settings) -> Storage:
    """Redis (shared, short socket timeouts: a dead Redis must not hang requests) or process memory."""
    if settings.redis_url:
        return storage_from_string(settings.redis_url, wrap_exceptions=True, socket_connect_timeout=0.5,
                                   socket_timeout=1.0)
    return storage_from_string("memory://")


class WindowMemoryStorage(MemoryStorage):
    """limits' MemoryStorage for fixed windows without its expiry timer: `incr` started a
    threading.Timer whenever the previous one had run (about one thread start per request under
    load). Counters are reset when touched after their window ended, as the library does, and
    expired ones are swept from `incr` at most once per `sweep_seconds` (bounded memory)."""

    STORAGE_SCHEME = ["promptforge-window-memory"]

    def __init__(self, sweep_seconds: float = 60.0):
        super().__init__()
        self._window_lock = threading.Lock()
        self._sweep_seconds = sweep_seconds
        self._next_sweep = time.time() + sweep_seconds

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._window_lock:
            if self.expirations.get(key, 0) <= now:
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
            count = self.storage[key] + amount
            self.storage[key] = count
            if count == amount:
                self.expirations[key] = now + expiry
            if now >= self._next_sweep:
                self._next_sweep = now + self._sweep_seconds
                for stale in [k for k, at in self.expirations.items() if at <= now]:
                    self.storage.pop(stale, None)
                    self.expirations.pop(stale, None)
                    self.locks.pop(stale, None)
            return count


class AsyncRedisCounter:
    """The limiter's Redis counting for the event loop (redis.asyncio). Hits waiting at one moment
    go to Redis in one pipeline (one round trip, one connection): a hit is sent at once when none is
    in flight, and those arriving meanwhile wait for the next pipeline (measured: ~100 µs of CPU per
    hit alone, ~22 µs in pipelines of 8). One client per event loop (a connection belongs to the
    loop that made it), with the sync storage's short timeouts."""

    def __init__(self, url: str, prefix: str):
        from redis.exceptions import NoScriptError, RedisError

        self._url = url
        self._prefix = prefix
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = None
        self._pending: list[tuple[str, list[str], list, asyncio.Future]] = []
        self._flushing: asyncio.Task | None = None
        self._no_script = NoScriptError
        #: What the client raises when Redis is unreachable or slow (never a programming error).
        self.errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

    def _connection(self):
        from redis import asyncio as aioredis

        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one is usable
            self._loop, self._pending, self._flushing = loop, [], None
            self._client = aioredis.Redis.from_url(self._url, socket_connect_timeout=0.5, socket_timeout=1.0)
        return self._client

    async def run(self, script: str, keys: list[str], args: list) -> object:
        """The script's answer for these keys (sent with the other hits waiting now)."""
        self._connection()
        answer = self._loop.create_future()
        self._pending.append((script, [f"{self._prefix}:{k}" for k in keys], args, answer))
        if self._flushing is None:
            self._flushing = self._loop.create_task(self._flush())
        return await answer

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._execute(batch)
                except Exception as exc:  # the whole pipeline failed: every hit in it did
                    results = [exc] * len(batch)
                for (*_, answer), result in zip(batch, results):
                    if answer.done():  # its request went away
                        continue
                    if isinstance(result, Exception):
                        answer.set_exception(result)
                    else:
                        answer.set_result(result)
        finally:
            self._flushing = None

    async def _execute(self, batch) -> list:
        client = self._connection()
        results = await self._pipeline(client, batch)
        missing = [i for i, r in enumerate(results) if isinstance(r, self._no_script)]
        if missing:  # Redis lost its scripts (a restart): load them, send those hits again (counted once)
            for script in {batch[i][0] for i in missing}:
                await client.script_load(script)
            again = await self._pipeline(client, [batch[i] for i in missing])
            for i, result in zip(missing, again):
                results[i] = result
        return results

    @staticmethod
    async def _pipeline(client, batch) -> list:
        async with client.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in batch:
                pipe.evalsha(_sha1(script), len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)

    async def ttl(self, key: str) -> int:
        return await self._connection().ttl(f"{self._prefix}:{key}")

    async def aclose(self) -> None:
        """Close this loop's client (on the loop that made it: the app's shutdown)."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.aclose()


@functools.cache
def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


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
    #: Window ends remembered (per bucket) before the expired ones are swept.
    MAX_REMEMBERED = 4096
    #: Leases (adr/0023): on Redis, the event loop takes a key's, user's or organisation's hits
    #: `lease` at a time, `lease` = limit // LEASE_PER, at most LEASE_MAX; under 2, every hit
    #: goes to Redis (the default limit of 600/min: exact). Client addresses are always exact.
    LEASE_MAX = 32
    LEASE_PER = 1000
    LEASED_KINDS = frozenset({"key", "user", "org"})

    def __init__(self, settings: Settings, cooldown: float = 5.0):
        storage = limiter_storage(settings) if settings.redis_url else WindowMemoryStorage()
        #: limits' fixed-window strategy over that storage; `hit` calls the storage as it does
        #: (`incr` with the window's expiry), then reads the window's end only when not known.
        self.limiter = FixedWindowRateLimiter(storage)
        self.per_minute = settings.rate_limit_per_minute
        self.items = {kind: RateLimitItemPerMinute(self.per_minute, namespace=f"pf-rl-{kind}")
                      for kind in ("key", "user", "org", "addr")}
        self.cooldown = cooldown
        self._down_until = 0.0
        #: storage key -> when its current window ends (time.time()), as last read or started here.
        self._window_ends: dict[str, float] = {}
        self._pair_script = None
        storage = self.limiter.storage
        #: Counting on the event loop (Redis only; the memory storage is counted in place).
        self._async = (AsyncRedisCounter(settings.redis_url, storage.key_prefix)
                       if type(storage) is RedisStorage else None)
        #: Hits taken from Redis and not spent yet, per storage key: [window end, left, count after
        #: the lease]. Only on the event loop (no await between reading and spending one).
        self.lease = min(self.LEASE_MAX, self.per_minute // self.LEASE_PER) if self._async is not None else 0
        self._leases: dict[str, list] = {}
        self._taking: dict[str, asyncio.Future] = {}
        #: (kind, key) -> its storage key (`item.key_for`, a pure function), for leased hits.
        self._storage_keys: dict[tuple[str, str], str] = {}

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()

    def _storage_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.cooldown
        log.warning("rate-limit storage unavailable (%s); failing open for %.0f s", storage_error_name(exc),
                    self.cooldown)

    async def hit_async(self, kind: str, key: str) -> Quota | None:
        """`hit` for the event loop: Redis through redis.asyncio; in memory, `hit` itself (no I/O)."""
        if self._async is None:
            return self.hit(kind, key)
        if self.lease > 1 and kind in self.LEASED_KINDS:
            return await self._leased(kind, key)
        if time.monotonic() < self._down_until:
            return None
        item = self.items[kind]
        storage_key = item.key_for(key)
        expiry = item.get_expiry()
        try:
            count = int(await self._async.run(SINGLE_SCRIPT, [storage_key], [expiry]))
            ends = await self._window_end_async(storage_key, count, expiry)
        except self._async.errors as exc:
            self._storage_down(exc)
            return None
        return self._quota(count, ends)

    async def hit_pair_async(self, first: tuple[str, str],
                             second: tuple[str, str]) -> tuple[Quota | None, Quota | None]:
        """`hit_pair` for the event loop (one round trip on Redis)."""
        if self._async is None:
            return self.hit_pair(first, second)
        if self.lease > 1 and first[0] in self.LEASED_KINDS and second[0] in self.LEASED_KINDS:
            quota = await self._leased(*first)  # the second counted only while the first allows
            return (quota, None) if quota is not None and not quota.allowed else (quota, await self._leased(*second))
        if time.monotonic() < self._down_until:
            return None, None
        items = self.items[first[0]], self.items[second[0]]
        keys = items[0].key_for(first[1]), items[1].key_for(second[1])
        expiry = items[0].get_expiry()
        try:
            counts = [int(c) for c in await self._async.run(PAIR_SCRIPT, list(keys), [expiry, self.per_minute])]
            ends = [await self._window_end_async(k, c, expiry) if c > 0 else None for k, c in zip(keys, counts)]
        except self._async.errors as exc:
            self._storage_down(exc)
            return None, None
        first_quota, second_quota = (self._quota(c, e) if e is not None else None for c, e in zip(counts, ends))
        return first_quota, second_quota

    async def _leased(self, kind: str, key: str) -> Quota | None:
        """A hit spent from this process's lease of the bucket, or (none left, or its window about to
        end) from a new lease taken in Redis (adr/0023). Every hit spent was counted in Redis when
        it was taken, within the limit: never more than the limit per window. One lease per bucket
        is taken at a time in a process (requests arriving meanwhile wait for it), so a process holds
        fewer than `lease` unspent hits of a bucket, and a request is refused at most
        (processes - 1) x (lease - 1) hits early (those held unspent by the other processes)."""
        item = self.items[kind]
        storage_key = self._storage_keys.get((kind, key))
        if storage_key is None:
            storage_key = item.key_for(key)
            if len(self._storage_keys) >= self.MAX_REMEMBERED:
                self._storage_keys.clear()
            self._storage_keys[(kind, key)] = storage_key
        while True:
            lease = self._leases.get(storage_key)
            if lease is not None and lease[1] > 0 and time.time() < lease[0] - 1:
                lease[1] -= 1
                return self._quota(lease[2] - lease[1], lease[0])
            if time.monotonic() < self._down_until:
                return None
            taking = self._taking.get(storage_key)
            if taking is None:
                break
            await asyncio.shield(taking)  # another request of this process is taking a lease
        taking = self._taking[storage_key] = asyncio.get_running_loop().create_future()
        try:
            count, taken, ttl_ms = (int(v) for v in await self._async.run(
                LEASE_SCRIPT, [storage_key], [item.get_expiry(), self.per_minute, self.lease]))
        except self._async.errors as exc:
            self._storage_down(exc)
            return None
        finally:
            del self._taking[storage_key]
            taking.set_result(None)
        ends = time.time() + (ttl_ms / 1000 if ttl_ms > 0 else item.get_expiry())
        if taken > 1:
            self._keep(storage_key, ends, taken - 1, count)
        return self._quota(count - taken + 1, ends)

    def _keep(self, storage_key: str, ends: float, left: int, count: int) -> None:
        """Keep a lease's unspent hits (a bucket's lease is taken only when none are left)."""
        if len(self._leases) >= self.MAX_REMEMBERED:
            now = time.time()
            for stale in [k for k, lease in self._leases.items() if lease[0] - 1 <= now or not lease[1]]:
                del self._leases[stale]
            if len(self._leases) >= self.MAX_REMEMBERED:
                self._leases.clear()
        self._leases[storage_key] = [ends, left, count]

    def hit(self, kind: str, key: str) -> Quota | None:
        """Count one request against a bucket; None when the storage is down (fail open)."""
        if time.monotonic() < self._down_until:
            return None
        item = self.items[kind]
        storage_key = item.key_for(key)
        expiry = item.get_expiry()
        try:
            count = self.limiter.storage.incr(storage_key, expiry)
            ends = self._window_end(storage_key, count, expiry)
        except STORAGE_ERRORS as exc:
            self._storage_down(exc)
            return None
        return self._quota(count, ends)

    def hit_pair(self, first: tuple[str, str], second: tuple[str, str]) -> tuple[Quota | None, Quota | None]:
        """Count two buckets as two `hit`s in a row would, the second only if the first still allows
        the request; on Redis in one round trip (`PAIR_SCRIPT`), elsewhere as two hits."""
        storage = self.limiter.storage
        if type(storage) is not RedisStorage:  # memory, or a cluster (keys may live on two nodes)
            quota = self.hit(*first)
            if quota is not None and not quota.allowed:
                return quota, None
            return quota, self.hit(*second)
        if time.monotonic() < self._down_until:
            return None, None
        items = self.items[first[0]], self.items[second[0]]
        keys = items[0].key_for(first[1]), items[1].key_for(second[1])
        expiry = items[0].get_expiry()
        try:
            if self._pair_script is None:
                self._pair_script = storage.get_connection().register_script(PAIR_SCRIPT)
            counts = [int(c) for c in self._pair_script(keys=[storage.prefixed_key(k) for k in keys],
                                                         args=[expiry, self.per_minute])]
            ends = [self._window_end(k, c, expiry) if c > 0 else None for k, c in zip(keys, counts)]
        except (*STORAGE_ERRORS, storage.base_exceptions) as exc:
            self._storage_down(exc)
            return None, None
        first_quota, second_quota = (self._quota(c, e) if e is not None else None for c, e in zip(counts, ends))
        return first_quota, second_quota

    def _quota(self, count: int, ends: float) -> Quota:
        allowed = count <= self.per_minute
        reset = max(1, math.ceil(ends - time.time()))
        return Quota(self.per_minute, max(0, self.per_minute - count) if allowed else 0, reset, allowed)

    def _window_end(self, storage_key: str, count: int, expiry: int) -> float:
        """When the bucket's window ends: it starts with the hit that counted 1 (here, or in another
        process: then read once from the storage). A remembered end more than a second away is
        still the same window (the storage reports whole seconds, rounded)."""
        ends = self._known_end(storage_key, count, expiry)
        return ends if ends is not None else self._remember(storage_key, self.limiter.storage.get_expiry(storage_key))

    async def _window_end_async(self, storage_key: str, count: int, expiry: int) -> float:
        ends = self._known_end(storage_key, count, expiry)
        if ends is None:
            ends = self._remember(storage_key, max(await self._async.ttl(storage_key), 0) + time.time())
        return ends

    def _known_end(self, storage_key: str, count: int, expiry: int) -> float | None:
        """The window's end without a read (remembered, or started by this hit); None: read it."""
        now = time.time()
        if count == 1:
            return self._remember(storage_key, now + expiry)
        known = self._window_ends.get(storage_key)
        return known if known is not None and now < known - 1 else None

    def _remember(self, storage_key: str, ends: float) -> float:
        now = time.time()
        if len(self._window_ends) >= self.MAX_REMEMBERED:
            for stale in [k for k, at in list(self._window_ends.items()) if at <= now]:
                self._window_ends.pop(stale, None)
            if len(self._window_ends) >= self.MAX_REMEMBERED:
                self._window_ends.clear()
        self._window_ends[storage_key] = ends
        return ends


def apply(state, limiter: RateLimiter, kind: str, key: str) -> None:
    """Count the request in one bucket, remember the most constrained quota for the response
    headers (`state` is request.state or the ASGI scope's state dict), and refuse with 429."""
    record(state, limiter.hit(kind, key))


def record(state, quota: Quota | None) -> None:
    """Remember a counted quota for the response headers (the most constrained one), and refuse
    with 429 when it is exhausted. None: not counted (storage down, or not reached)."""
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
