"""interfaces.http.ratelimit: fixed one-minute windows counted with one storage call per hit, and the
in-memory storage without a timer thread per hit (adr/0020)."""
from __future__ import annotations

import threading
import time

from interfaces.http.ratelimit import RateLimiter, WindowMemoryStorage
from interfaces.settings import Settings


def limiter(per_minute: int = 3) -> RateLimiter:
    return RateLimiter(Settings(rate_limit_per_minute=per_minute))


def test_fixed_window_counts_refuses_and_reports():
    rl = limiter(3)
    quotas = [rl.hit("key", "k1") for _ in range(5)]
    assert [q.allowed for q in quotas] == [True, True, True, False, False]
    assert [q.remaining for q in quotas] == [2, 1, 0, 0, 0]
    assert all(q.limit == 3 and 59 <= q.reset_seconds <= 60 for q in quotas)
    assert rl.hit("key", "k2").remaining == 2  # buckets are separate
    assert rl.hit("org", "k1").remaining == 2  # and so are kinds


def test_a_window_ends_and_a_new_one_starts(monkeypatch):
    rl = limiter(2)
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    assert rl.hit("user", "u").remaining == 1
    now[0] += 30
    q = rl.hit("user", "u")
    assert q.remaining == 0 and q.reset_seconds == 30
    assert not rl.hit("user", "u").allowed
    now[0] += 31  # past the window that started at the first hit
    q = rl.hit("user", "u")
    assert q.allowed and q.remaining == 1 and q.reset_seconds == 60


def test_a_window_started_elsewhere_is_read_once_from_the_storage():
    rl = limiter(100)
    storage = rl.limiter.storage
    storage.incr(rl.items["key"].key_for("shared"), 60)  # another process's hit started the window
    reads = []
    original = storage.get_expiry
    storage.get_expiry = lambda key: reads.append(key) or original(key)
    for _ in range(5):
        assert rl.hit("key", "shared").reset_seconds in (59, 60)
    assert len(reads) == 1


def test_no_thread_is_started_per_hit():
    rl = limiter(10**9)
    rl.hit("key", "warm")
    time.sleep(0.05)  # the storage's one start-up timer has run
    before = threading.active_count()
    started = []
    original = threading.Thread.start

    def counting_start(self):
        started.append(self)
        return original(self)

    threading.Thread.start = counting_start
    try:
        for i in range(200):
            rl.hit("key", f"k{i % 7}")
            time.sleep(0.0002)
    finally:
        threading.Thread.start = original
    assert started == [] and threading.active_count() <= before


def test_expired_counters_are_swept():
    storage = WindowMemoryStorage(sweep_seconds=0.0)
    storage.incr("a", 0.01)
    storage.incr("b", 60)
    time.sleep(0.02)
    storage.incr("c", 60)  # sweeps
    assert set(storage.storage) == {"b", "c"} and set(storage.expirations) == {"b", "c"}


def test_a_pair_counts_the_second_bucket_only_while_the_first_allows():
    rl = limiter(2)
    assert [q.remaining for q in rl.hit_pair(("key", "k"), ("org", "o"))] == [1, 1]
    assert [q.remaining for q in rl.hit_pair(("key", "k"), ("org", "o"))] == [0, 0]
    refused, org = rl.hit_pair(("key", "k"), ("org", "o"))
    assert not refused.allowed and org is None  # the org's budget is not spent by a refused key
    assert rl.hit("org", "o").allowed is False  # it holds 2 of 2, not 3
