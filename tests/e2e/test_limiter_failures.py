"""The login throttle and the rate limiter over HTTP when their storage is down (fail open) or they
have a bug (a 500 with the traceback logged: never an open door that nobody notices)."""
from __future__ import annotations

import logging

from tests.e2e.support import assert_error

CLOSED_PORT_URL = "redis://:not-a-real-password@127.0.0.1:1/0"  # nothing listens on port 1


def _bug(*args, **kwargs):
    raise TypeError("a programming error inside the limiter")


def test_unreachable_redis_fails_open_for_logins_and_requests(api_factory, caplog):
    api = api_factory(redis_url=CLOSED_PORT_URL, login_attempts_per_minute=1, rate_limit_per_minute=1)
    with caplog.at_level(logging.WARNING, logger="promptforge.http"):
        user = api.user()  # registers and logs in
        assert api.get("/v1/me", headers=user.h).status_code == 200
        assert api.get("/v1/me", headers=user.h).status_code == 200  # over the (unenforced) limit of 1
        assert api.login(user.email).status_code == 200
        assert_error(api.get("/v1/me"), 401, "UNAUTHENTICATED")
    messages = [r.getMessage() for r in caplog.records if r.name == "promptforge.http" and r.levelno == logging.WARNING]
    assert any(m.startswith("login throttle storage unavailable (ConnectionError)") for m in messages), messages
    assert any(m.startswith("rate-limit storage unavailable (ConnectionError)") for m in messages), messages
    assert "not-a-real-password" not in caplog.text


def test_a_bug_in_the_login_throttle_is_not_swallowed(api, monkeypatch, caplog):
    api.register("careful@example.com")
    monkeypatch.setattr(api.app.state.login_throttle.limiter.storage, "acquire_entry", _bug)
    with caplog.at_level(logging.ERROR, logger="promptforge.http"):
        r = api.login("careful@example.com", "wrong password!!")
    assert_error(r, 500, "INTERNAL_ERROR")
    assert any(rec.exc_info and rec.exc_info[0] is TypeError for rec in caplog.records)


def test_a_bug_in_the_request_rate_limiter_is_not_swallowed(api, monkeypatch, caplog):
    monkeypatch.setattr(api.app.state.rate_limiter.limiter.storage, "incr", _bug)
    with caplog.at_level(logging.ERROR, logger="promptforge.http"):
        r = api.get("/v1/me")
    assert_error(r, 500, "INTERNAL_ERROR")
    assert any(rec.exc_info and rec.exc_info[0] is TypeError for rec in caplog.records)
