"""The login throttle and the request rate limiter on their production storage (Redis), shared by every
API process; what they do when Redis is unreachable (fail open) and on a bug (propagate)."""
from __future__ import annotations

import logging
import threading
import uuid

import pytest

from interfaces.http.errors import ApiError
from interfaces.http.ratelimit import RateLimiter
from interfaces.http.throttling import LoginThrottle
from interfaces.settings import Settings

CLOSED_PORT_URL = "redis://:not-a-real-password@127.0.0.1:1/0"  # nothing listens on port 1


def _settings(tmp_path, redis_url: str, **overrides) -> Settings:
    return Settings(data_dir=tmp_path, redis_url=redis_url, env="test", **overrides)


def _fresh() -> tuple[str, str]:
    """An email and an address nobody else uses (the Redis database is shared between test runs)."""
    return f"{uuid.uuid4().hex}@example.com", f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"


@pytest.mark.redis
def test_redis_backed_throttle_is_shared_between_processes(redis_url, tmp_path):
    settings = _settings(tmp_path, redis_url, login_attempts_per_minute=2)
    worker_a, worker_b = LoginThrottle(settings), LoginThrottle(settings)  # two API processes
    email, address = _fresh()
    worker_a.attempt(email, address)
    worker_b.attempt(email, address)
    with pytest.raises(ApiError) as refused:
        worker_a.attempt(email, address)
    assert refused.value.status == 429 and refused.value.code == "TOO_MANY_LOGIN_ATTEMPTS"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    worker_b.attempt(f"other-{email}", address)  # another account from that address
    worker_b.attempt(email, _fresh()[1])  # the same account from another address


@pytest.mark.redis
def test_redis_backed_attempts_are_counted_atomically(redis_url, tmp_path):
    """12 concurrent attempts with a limit of 2, from two API processes: exactly 2 get through."""
    settings = _settings(tmp_path, redis_url, login_attempts_per_minute=2)
    workers = [LoginThrottle(settings), LoginThrottle(settings)]
    email, address = _fresh()
    start = threading.Barrier(12)
    outcomes: list[str] = []

    def one(worker: LoginThrottle) -> None:
        start.wait(timeout=60)
        try:
            worker.attempt(email, address)
            outcomes.append("through")
        except ApiError:
            outcomes.append("refused")

    threads = [threading.Thread(target=one, args=(workers[i % 2],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["refused"] * 10 + ["through"] * 2


@pytest.mark.redis
def test_redis_backed_success_clears_only_that_address(redis_url, tmp_path):
    throttle = LoginThrottle(_settings(tmp_path, redis_url, login_attempts_per_minute=1))
    email, address = _fresh()
    other_address = _fresh()[1]
    throttle.attempt(email, address)
    throttle.attempt(email, other_address)
    throttle.succeeded(email, address)
    throttle.attempt(email, address)  # cleared
    with pytest.raises(ApiError):
        throttle.attempt(email, other_address)  # not cleared


def test_unreachable_storage_fails_open_without_logging_the_url(tmp_path, caplog):
    throttle = LoginThrottle(_settings(tmp_path, CLOSED_PORT_URL, login_attempts_per_minute=1))
    limiter = RateLimiter(_settings(tmp_path, CLOSED_PORT_URL, rate_limit_per_minute=1))
    with caplog.at_level(logging.WARNING, logger="promptforge.http"):
        for _ in range(3):
            throttle.attempt("a@example.com", "1.2.3.4")  # no exception: logins stay available
        throttle.succeeded("a@example.com", "1.2.3.4")
        assert limiter.hit("addr", "1.2.3.4") is None  # requests too
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(" (")[0] for r in warnings] == ["login throttle storage unavailable",
                                                                  "rate-limit storage unavailable"]
    assert all("ConnectionError" in r.getMessage() for r in warnings)
    assert "not-a-real-password" not in caplog.text and "127.0.0.1:1" not in caplog.text


@pytest.mark.redis
def test_a_bug_inside_the_redis_backed_throttle_is_not_swallowed(redis_url, tmp_path, monkeypatch):
    throttle = LoginThrottle(_settings(tmp_path, redis_url))

    def bug(*args, **kwargs):
        raise TypeError("a programming error, not an outage")

    monkeypatch.setattr(throttle.limiter.storage, "acquire_entry", bug)
    with pytest.raises(TypeError, match="programming error"):
        throttle.attempt(*_fresh())


@pytest.mark.redis
def test_a_bug_inside_the_redis_backed_rate_limiter_is_not_swallowed(redis_url, tmp_path, monkeypatch):
    limiter = RateLimiter(_settings(tmp_path, redis_url))
    assert limiter.hit("addr", _fresh()[1]).allowed  # the real Redis answers

    def bug(*args, **kwargs):
        raise KeyError("a programming error, not an outage")

    monkeypatch.setattr(limiter.limiter.storage, "incr", bug)
    with pytest.raises(KeyError, match="programming error"):
        limiter.hit("addr", _fresh()[1])
