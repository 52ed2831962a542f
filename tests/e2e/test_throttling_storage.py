"""The login throttle on its production storage (Redis), shared by every API process."""
from __future__ import annotations

import uuid

import pytest

from interfaces.http.errors import ApiError
from interfaces.http.throttling import LoginThrottle
from interfaces.settings import Settings


@pytest.mark.redis
def test_redis_backed_throttle_is_shared_between_processes(redis_url, tmp_path):
    settings = Settings(data_dir=tmp_path, redis_url=redis_url, login_attempts_per_minute=2, env="test")
    worker_a, worker_b = LoginThrottle(settings), LoginThrottle(settings)  # two API processes
    email, address = f"{uuid.uuid4().hex}@example.com", f"10.0.0.{uuid.uuid4().int % 250}"
    worker_a.check(email, address)
    worker_a.failed(email, address)
    worker_b.failed(email, address)
    with pytest.raises(ApiError) as refused:
        worker_a.check(email, address)
    assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
    worker_b.check(f"other-{email}", address)  # the address allows 5x as many


def test_unreachable_storage_fails_open(tmp_path):
    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", login_attempts_per_minute=1,
                        env="test")
    throttle = LoginThrottle(settings)
    throttle.failed("a@example.com", "1.2.3.4")
    throttle.check("a@example.com", "1.2.3.4")  # no exception: logins stay available
