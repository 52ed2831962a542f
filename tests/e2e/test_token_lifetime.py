"""A correctly signed token that lives longer than the configured TTL is refused over HTTP."""
from __future__ import annotations

import time
import uuid

import jwt

from interfaces.settings import DEV_JWT_SECRET
from tests.e2e.support import assert_error

TEN_YEARS = 10 * 365 * 86_400


def test_a_ten_year_token_minted_with_the_development_secret_is_refused(api):
    user = api.user()
    now = int(time.time())
    claims = {"iss": "promptforge", "aud": "promptforge-api", "sub": user.user_id, "sid": user.session_id,
              "iat": now, "exp": now + TEN_YEARS, "jti": uuid.uuid4().hex, "typ": "access"}
    forged = jwt.encode(claims, DEV_JWT_SECRET, algorithm="HS256")
    r = api.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert_error(r, 401, "INVALID_TOKEN")
    assert r.headers["www-authenticate"] == "Bearer"
    # the same claims with the configured lifetime are accepted: only the lifetime is at fault
    claims["exp"] = now + api.container.settings.access_token_ttl_seconds
    honest = jwt.encode(claims, DEV_JWT_SECRET, algorithm="HS256")
    assert api.get("/v1/me", headers={"Authorization": f"Bearer {honest}"}).status_code == 200


def test_a_refresh_token_longer_than_the_refresh_ttl_is_refused(api):
    user = api.user()
    now = int(time.time())
    payload = jwt.decode(user.refresh, DEV_JWT_SECRET, algorithms=["HS256"], audience="promptforge-api:refresh")
    payload.update(iat=now, exp=now + TEN_YEARS)
    forged = jwt.encode(payload, DEV_JWT_SECRET, algorithm="HS256")
    assert_error(api.post("/v1/auth/refresh", json={"refresh_token": forged}), 401, "INVALID_TOKEN")
    assert api.post("/v1/auth/refresh", json={"refresh_token": user.refresh}).status_code == 200
