"""RateLimiter.hit_pair on Redis (adr/0020): a caller's bucket and its organisation's in one round
trip, counted exactly as two hits in a row (same keys as the `limits` library), failing open; and
the same counting on the event loop (`hit_async`, `hit_pair_async`, redis.asyncio)."""
from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from interfaces.http.ratelimit import RateLimiter
from interfaces.settings import Settings

pytestmark = pytest.mark.redis


def _limiter(tmp_path, redis_url: str, per_minute: int) -> RateLimiter:
    return RateLimiter(Settings(data_dir=tmp_path, redis_url=redis_url, env="test", rate_limit_per_minute=per_minute))


def test_one_round_trip_counts_like_two_hits(redis_url, tmp_path):
    a, b = _limiter(tmp_path, redis_url, 3), _limiter(tmp_path, redis_url, 3)  # two API processes
    key, org = uuid.uuid4().hex, uuid.uuid4().hex
    a.hit_pair(("key", uuid.uuid4().hex), ("org", uuid.uuid4().hex))  # the script is loaded on first use
    calls = []
    storage = a.limiter.storage
    original = storage.storage.evalsha
    storage.storage.evalsha = lambda *args, **kw: calls.append(args) or original(*args, **kw)
    first, second = a.hit_pair(("key", key), ("org", org))
    assert (first.remaining, second.remaining, first.reset_seconds) == (2, 2, 60)
    assert len(calls) == 1
    assert b.hit("key", key).remaining == 1  # the same Redis keys as a plain hit
    assert b.hit("org", org).remaining == 1
    first, second = a.hit_pair(("key", key), ("org", org))
    assert (first.remaining, second.remaining) == (0, 0) and 55 <= second.reset_seconds <= 60
    refused, untouched = a.hit_pair(("key", key), ("org", org))
    assert not refused.allowed and untouched is None
    assert not b.hit("org", org).allowed  # 4 > 3: counted by this hit, not by the refused pair


def test_unreachable_redis_fails_open(tmp_path, caplog):
    rl = _limiter(tmp_path, "redis://:secret-password@127.0.0.1:1/0", 1)
    with caplog.at_level(logging.WARNING, logger="promptforge.http"):
        assert rl.hit_pair(("key", "k"), ("org", "o")) == (None, None)
        assert rl.hit_pair(("key", "k"), ("org", "o")) == (None, None)  # quiet during the cooldown
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("rate-limit storage unavailable (ConnectionError)")
    assert "secret-password" not in caplog.text


def test_counting_on_the_loop_shares_the_buckets_of_the_sync_path(redis_url, tmp_path):
    loop_side, sync_side = _limiter(tmp_path, redis_url, 3), _limiter(tmp_path, redis_url, 3)
    key, org = uuid.uuid4().hex, uuid.uuid4().hex

    async def scenario():
        first, second = await loop_side.hit_pair_async(("key", key), ("org", org))
        assert (first.remaining, second.remaining, first.reset_seconds, second.reset_seconds) == (2, 2, 60, 60)
        assert sync_side.hit("key", key).remaining == 1  # counted in the sync path's keys
        assert (await loop_side.hit_async("org", org)).remaining == 1
        first, second = await loop_side.hit_pair_async(("key", key), ("org", org))
        assert (first.remaining, second.remaining) == (0, 0)
        refused, untouched = await loop_side.hit_pair_async(("key", key), ("org", org))
        assert not refused.allowed and untouched is None
        assert not sync_side.hit("org", org).allowed
        await loop_side.aclose()

    asyncio.run(scenario())
    # a window started elsewhere: its end is read from Redis once, then remembered
    other = _limiter(tmp_path, redis_url, 3)

    async def later():
        quota = await other.hit_async("org", org)
        assert not quota.allowed and 55 <= quota.reset_seconds <= 60
        await other.aclose()

    asyncio.run(later())


def test_counting_on_the_loop_fails_open_when_redis_is_unreachable(tmp_path, caplog):
    rl = _limiter(tmp_path, "redis://:secret-password@127.0.0.1:1/0", 1)

    async def scenario():
        assert await rl.hit_pair_async(("key", "k"), ("org", "o")) == (None, None)
        assert await rl.hit_async("key", "k") is None  # quiet during the cooldown
        await rl.aclose()

    with caplog.at_level(logging.WARNING, logger="promptforge.http"):
        asyncio.run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("rate-limit storage unavailable (ConnectionError)")
    assert "secret-password" not in caplog.text


def test_in_memory_counting_on_the_loop_is_the_sync_counting(tmp_path):
    rl = RateLimiter(Settings(data_dir=tmp_path, env="test", rate_limit_per_minute=2))

    async def scenario():
        first, second = await rl.hit_pair_async(("key", "k"), ("org", "o"))
        assert (first.remaining, second.remaining) == (1, 1)
        assert (await rl.hit_async("org", "o")).remaining == 0
        assert rl.hit("key", "k").remaining == 0

    asyncio.run(scenario())


def test_hits_waiting_together_share_a_pipeline_and_each_counts_once(redis_url, tmp_path):
    rl = _limiter(tmp_path, redis_url, 1000)
    org = uuid.uuid4().hex
    counter = rl._async
    pipelines = []

    async def scenario():
        original = counter._pipeline

        async def counted(client, batch):
            pipelines.append(len(batch))
            return await original(client, batch)

        counter._pipeline = counted
        answers = await asyncio.gather(*(rl.hit_pair_async(("key", uuid.uuid4().hex), ("org", org))
                                         for _ in range(40)))
        assert sorted(second.remaining for _, second in answers) == list(range(960, 1000))
        assert sum(pipelines) == 40 and len(pipelines) < 40  # shared round trips
        await rl.aclose()

    asyncio.run(scenario())


def test_scripts_lost_by_redis_are_loaded_again_and_the_hit_counted_once(redis_url, tmp_path):
    import redis

    rl = _limiter(tmp_path, redis_url, 1000)
    key = uuid.uuid4().hex

    async def scenario():
        assert (await rl.hit_async("key", key)).remaining == 999
        redis.Redis.from_url(redis_url).script_flush()  # as a Redis restart does
        assert (await rl.hit_async("key", key)).remaining == 998
        await rl.aclose()

    asyncio.run(scenario())
