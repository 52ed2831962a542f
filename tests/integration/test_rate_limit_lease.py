"""Rate-limit leases on Redis (adr/0023): with a large limit, each process takes a key's, user's or
organisation's hits from Redis `lease` at a time and spends them on the event loop. Never more
than the limit per window; a request refused early by at most (processes - 1) x (lease - 1) hits
held unspent elsewhere; small limits and client addresses counted exactly; failing open."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
import redis

from interfaces.http.ratelimit import RateLimiter
from interfaces.settings import Settings

pytestmark = pytest.mark.redis


def _limiter(tmp_path, redis_url: str, per_minute: int) -> RateLimiter:
    return RateLimiter(Settings(data_dir=tmp_path, redis_url=redis_url, env="test", rate_limit_per_minute=per_minute))


def _trips(limiter: RateLimiter) -> list[int]:
    """Counts the hits sent to Redis (each pipeline's size)."""
    counter = limiter._async
    trips: list[int] = []
    original = counter._pipeline

    async def counted(client, batch):
        trips.append(len(batch))
        return await original(client, batch)

    counter._pipeline = counted
    return trips


def _stored(redis_url: str, limiter: RateLimiter, kind: str, key: str) -> int:
    storage_key = f"{limiter.limiter.storage.key_prefix}:{limiter.items[kind].key_for(key)}"
    return int(redis.Redis.from_url(redis_url).get(storage_key) or 0)


def test_two_processes_never_admit_more_than_the_limit_and_refuse_early_by_at_most_one_lease(redis_url, tmp_path):
    limit = 32_000
    a, b = _limiter(tmp_path, redis_url, limit), _limiter(tmp_path, redis_url, limit)  # two API processes
    assert a.lease == b.lease == 32
    key, org = uuid.uuid4().hex, uuid.uuid4().hex
    trips = _trips(b)

    async def spend(limiter: RateLimiter, concurrent: int) -> int:
        """Pairs (key, org) until the key's bucket refuses: how many were admitted."""
        admitted = 0
        while True:
            answers = await asyncio.gather(*(limiter.hit_pair_async(("key", key), ("org", org))
                                             for _ in range(concurrent)))
            for first, second in answers:
                if first.allowed:
                    admitted += 1
                    assert second.allowed
                else:
                    assert second is None  # a refused key does not spend its organisation's budget
            if not all(first.allowed for first, _ in answers):
                return admitted

    async def scenario():
        first, _ = await a.hit_pair_async(("key", key), ("org", org))  # A holds the rest of a lease
        assert first.allowed and first.remaining == limit - 1
        admitted_b = await spend(b, concurrent=16)  # B, requests waiting together
        assert 1 + admitted_b >= limit - (a.lease - 1)  # refused early by at most A's unspent hits
        admitted_a = await spend(a, concurrent=1)
        assert 1 + admitted_a + admitted_b == limit  # every hit taken was spent: none lost, none over
        await a.aclose()
        await b.aclose()

    asyncio.run(scenario())
    assert sum(trips) < 2 * limit // 32 + 64  # one trip per lease, then one per hit near the limit
    assert _stored(redis_url, a, "key", key) > limit  # refused requests are counted, as without leases
    assert _stored(redis_url, a, "org", org) == limit  # counted only for the admitted ones


def test_small_limits_and_client_addresses_are_counted_exactly(redis_url, tmp_path):
    small = _limiter(tmp_path, redis_url, 1_999)
    assert small.lease == 1
    large = _limiter(tmp_path, redis_url, 10**9)
    assert large.lease == 32
    key, addr = uuid.uuid4().hex, "10.0.0.%d" % (uuid.uuid4().int % 250)
    trips = _trips(small)

    async def scenario():
        for expected in range(1_998, 1_988, -1):
            assert (await small.hit_async("key", key)).remaining == expected
        for _ in range(5):
            await large.hit_async("addr", addr)
        await small.aclose()
        await large.aclose()

    asyncio.run(scenario())
    assert trips == [1] * 10
    assert _stored(redis_url, small, "key", key) == 10
    assert _stored(redis_url, large, "addr", addr) == 5  # never leased: one count per request


def test_hits_are_not_spent_in_the_last_second_of_their_window(redis_url, tmp_path):
    limiter = _limiter(tmp_path, redis_url, 10**6)
    key = uuid.uuid4().hex

    async def scenario():
        await limiter.hit_async("key", key)
        assert _stored(redis_url, limiter, "key", key) == limiter.lease
        storage_key = limiter.items["key"].key_for(key)
        limiter._leases[storage_key][0] = time.time() + 0.9  # the window ends in under a second
        await limiter.hit_async("key", key)  # not from the held lease: a new one
        assert _stored(redis_url, limiter, "key", key) == 2 * limiter.lease
        await limiter.aclose()

    asyncio.run(scenario())


def test_leases_fail_open_when_redis_is_unreachable(tmp_path, caplog):
    limiter = _limiter(tmp_path, "redis://:secret-password@127.0.0.1:1/0", 10**6)
    assert limiter.lease == 32

    async def scenario():
        assert await limiter.hit_pair_async(("key", "k"), ("org", "o")) == (None, None)
        assert await limiter.hit_async("user", "u") is None  # quiet during the cooldown
        await limiter.aclose()

    with caplog.at_level(logging.WARNING, logger="promptforge.http"):
        asyncio.run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("rate-limit storage unavailable (ConnectionError)")
    assert "secret-password" not in caplog.text
