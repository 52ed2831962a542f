"""RateLimiter.hit_pair on Redis (adr/0020): a caller's bucket and its organisation's in one round
trip, counted exactly as two hits in a row (same keys as the `limits` library), failing open."""
from __future__ import annotations

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
