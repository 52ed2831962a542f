"""Identity over HTTP: register, login, refresh rotation and reuse, logout, sessions, me, JWT forgery."""
from __future__ import annotations

import time
import uuid

import jwt
import pytest

from interfaces.settings import DEV_JWT_SECRET
from tests.e2e.support import PASSWORD, assert_error


def claims(user, **overrides):
    now = int(time.time())
    base = {"iss": "promptforge", "aud": "promptforge-api", "sub": user.user_id, "sid": user.session_id,
            "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, "typ": "access"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- register ----------------------------------------------------------------------------------
def test_register_returns_the_user_and_position(api):
    r = api.post("/v1/auth/register", json={"email": " Ada@Example.com ", "password": PASSWORD,
                                            "display_name": "Ada"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["email"] == "ada@example.com" and body["display_name"] == "Ada"
    assert body["position"] > 0 and r.headers["x-event-position"] == str(body["position"])
    assert "password" not in r.text and PASSWORD not in r.text


def test_register_refuses_duplicates_weak_passwords_roles_and_bad_emails(api):
    api.register("dup@example.com")
    assert_error(api.post("/v1/auth/register", json={"email": "DUP@example.com", "password": PASSWORD}),
                 409, "EMAIL_TAKEN")
    assert_error(api.post("/v1/auth/register", json={"email": "w@example.com", "password": "elevenchars"}),
                 422, "WEAK_PASSWORD")
    body = assert_error(api.post("/v1/auth/register", json={"email": "r@example.com", "password": PASSWORD,
                                                           "role": "owner"}), 422, "VALIDATION_ERROR")
    assert body["error"]["details"]["errors"][0]["loc"] == ["body", "role"]
    assert_error(api.post("/v1/auth/register", json={"email": "not-an-email", "password": PASSWORD}),
                 422, "VALIDATION_ERROR")
    assert_error(api.post("/v1/auth/register", json={"email": "x@example.com"}), 422, "VALIDATION_ERROR")


# -- login / me --------------------------------------------------------------------------------
def test_login_issues_a_pinned_jwt_and_me_answers(api):
    api.register("me@example.com", display_name="Me")
    r = api.login("me@example.com")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    t = r.json()
    assert t["token_type"] == "bearer" and t["expires_in"] == 900
    header = jwt.get_unverified_header(t["access_token"])
    assert header["alg"] == "HS256"
    decoded = jwt.decode(t["access_token"], DEV_JWT_SECRET, algorithms=["HS256"], audience="promptforge-api")
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "sid"} <= set(decoded)
    me = api.get("/v1/me", headers=bearer(t["access_token"]))
    assert me.status_code == 200 and me.json()["email"] == "me@example.com" and me.json()["organisations"] == []
    assert_error(api.login("me@example.com", "wrong password!!"), 401, "INVALID_CREDENTIALS")
    assert_error(api.login("nobody@example.com"), 401, "INVALID_CREDENTIALS")


def test_me_lists_organisations_with_roles(api):
    owner, dev = api.user("owner"), api.user("dev")
    org = api.org(owner, "Acme")
    api.add(owner, org, dev, "developer")
    orgs = api.q("/v1/me", dev).json()["organisations"]
    assert orgs == [{"org_id": org, "name": "Acme", "plan": "FREE", "role": "developer"}]


def test_missing_or_malformed_authorization_is_401(api):
    assert_error(api.get("/v1/me"), 401, "UNAUTHENTICATED")
    for header in ("Basic abc", "Bearer", "Bearer ", "token", "Bearer " + "x" * 5000, "Bearer a.b.c"):
        r = api.get("/v1/me", headers={"Authorization": header})
        assert_error(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"


# -- forged and expired tokens -----------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:The HMAC key")
def test_forged_and_expired_jwts_are_refused(api):
    user = api.user()
    assert api.get("/v1/me", headers=user.h).status_code == 200
    forged = {
        "alg none": jwt.encode(claims(user), None, algorithm="none"),
        "wrong key": jwt.encode(claims(user), "another-secret-that-is-long-enough-0123456789", algorithm="HS256"),
        "wrong audience": jwt.encode(claims(user, aud="someone-else"), DEV_JWT_SECRET, algorithm="HS256"),
        "wrong issuer": jwt.encode(claims(user, iss="evil"), DEV_JWT_SECRET, algorithm="HS256"),
        "HS512 not pinned": jwt.encode(claims(user), DEV_JWT_SECRET, algorithm="HS512"),
        "no sid": jwt.encode(claims(user, sid=None), DEV_JWT_SECRET, algorithm="HS256"),
        "no exp": jwt.encode(claims(user, exp=None), DEV_JWT_SECRET, algorithm="HS256"),
        "no jti": jwt.encode(claims(user, jti=None), DEV_JWT_SECRET, algorithm="HS256"),
        "refresh as access": user.refresh,
        "typ refresh": jwt.encode(claims(user, typ="refresh"), DEV_JWT_SECRET, algorithm="HS256"),
        "sub not a uuid": jwt.encode(claims(user, sub="admin"), DEV_JWT_SECRET, algorithm="HS256"),
        "someone else's sid": jwt.encode(claims(user, sid=str(uuid.uuid4())), DEV_JWT_SECRET, algorithm="HS256"),
        "tampered payload": user.access[:-4] + ("AAAA" if not user.access.endswith("AAAA") else "BBBB"),
    }
    for what, token in forged.items():
        r = api.get("/v1/me", headers=bearer(token))
        body = assert_error(r, 401)
        assert body["error"]["code"] in {"INVALID_TOKEN", "SESSION_REVOKED"}, what
    expired = jwt.encode(claims(user, iat=int(time.time()) - 4000, exp=int(time.time()) - 3000), DEV_JWT_SECRET,
                         algorithm="HS256")
    assert_error(api.get("/v1/me", headers=bearer(expired)), 401, "TOKEN_EXPIRED")


def test_access_token_ttl_is_enforced(api_factory):
    api = api_factory(access_token_ttl_seconds=30)
    user = api.user()
    payload = jwt.decode(user.access, DEV_JWT_SECRET, algorithms=["HS256"], audience="promptforge-api")
    assert payload["exp"] - payload["iat"] == 30


# -- refresh rotation and reuse ----------------------------------------------------------------
def test_refresh_rotates_and_reuse_revokes_the_family(api):
    user = api.user()
    r1 = api.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert r1.status_code == 200, r1.text
    pair1 = r1.json()
    assert pair1["session_id"] == user.session_id and pair1["refresh_token"] != user.refresh
    r2 = api.post("/v1/auth/refresh", json={"refresh_token": pair1["refresh_token"]})
    assert r2.status_code == 200
    pair2 = r2.json()
    assert api.get("/v1/me", headers=bearer(pair2["access_token"])).status_code == 200
    # the first token again: reuse -> 401 and the whole family is revoked
    assert_error(api.post("/v1/auth/refresh", json={"refresh_token": user.refresh}), 401, "REFRESH_TOKEN_REUSED")
    assert_error(api.post("/v1/auth/refresh", json={"refresh_token": pair2["refresh_token"]}), 401, "SESSION_REVOKED")
    assert_error(api.get("/v1/me", headers=bearer(pair2["access_token"])), 401, "SESSION_REVOKED")
    assert_error(api.get("/v1/me", headers=user.h), 401, "SESSION_REVOKED")
    # other sessions of the same user are not affected
    other = api.login(user.email).json()
    assert api.get("/v1/me", headers=bearer(other["access_token"])).status_code == 200


def test_refresh_refuses_garbage_and_access_tokens(api):
    user = api.user()
    for token in ("", "garbage", user.access, jwt.encode({"typ": "refresh"}, DEV_JWT_SECRET, algorithm="HS256")):
        assert_error(api.post("/v1/auth/refresh", json={"refresh_token": token}), 401)
    assert_error(api.post("/v1/auth/refresh", json={}), 422, "VALIDATION_ERROR")


# -- logout and sessions -----------------------------------------------------------------------
def test_logout_revokes_the_session_at_once(api):
    user = api.user()
    r = api.post("/v1/auth/logout", headers=user.h)
    assert r.status_code == 200 and r.json()["revoked"] is True and "x-event-position" in r.headers
    assert_error(api.get("/v1/me", headers=user.h), 401, "SESSION_REVOKED")
    assert_error(api.post("/v1/auth/refresh", json={"refresh_token": user.refresh}), 401, "SESSION_REVOKED")


def test_logout_all_and_sessions_listing(api):
    user = api.user()
    second = api.login(user.email, headers={"User-Agent": "cli/1.0"}).json()
    listed = api.q("/v1/auth/sessions", user).json()["items"]
    assert {s["session_id"] for s in listed} == {user.session_id, second["session_id"]}
    current = [s for s in listed if s["current"]]
    assert len(current) == 1 and current[0]["session_id"] == user.session_id
    assert {s["user_agent"] for s in listed} == {"testclient", "cli/1.0"}
    assert api.post("/v1/auth/logout-all", headers=user.h).status_code == 200
    assert_error(api.get("/v1/me", headers=user.h), 401, "SESSION_REVOKED")
    assert_error(api.get("/v1/me", headers=bearer(second["access_token"])), 401, "SESSION_REVOKED")
    fresh = api.login(user.email).json()
    headers = bearer(fresh["access_token"])
    r = api.get("/v1/auth/sessions", headers=headers, params={"min_position": api.position})
    assert [s["session_id"] for s in r.json()["items"]] == [fresh["session_id"]]
    r = api.get("/v1/auth/sessions", headers=headers, params={"include_inactive": "true",
                                                             "min_position": api.position})
    assert len(r.json()["items"]) == 3 and sum(s["active"] for s in r.json()["items"]) == 1


def test_api_keys_cannot_use_account_routes(api):
    owner = api.user()
    org = api.org(owner)
    key = api.key(owner, org, ["prompts:read"])
    for method, url in (("GET", "/v1/me"), ("GET", "/v1/auth/sessions"), ("POST", "/v1/auth/logout"),
                        ("POST", "/v1/auth/logout-all")):
        assert_error(api.request(method, url, headers=key.h), 403, "USER_TOKEN_REQUIRED")
    assert_error(api.post("/v1/orgs", json={"name": "x"}, headers=key.h), 403, "USER_TOKEN_REQUIRED")


# -- throttling (more in test_login_throttle.py) -------------------------------------------------
def test_failed_logins_are_throttled_per_account(api_factory):
    api = api_factory(login_attempts_per_minute=3)
    api.register("victim@example.com")
    for _ in range(3):
        assert_error(api.login("victim@example.com", "wrong password!!"), 401, "INVALID_CREDENTIALS")
    r = api.login("victim@example.com")  # even the right password, until the window frees up
    body = assert_error(r, 429, "TOO_MANY_LOGIN_ATTEMPTS")
    assert 1 <= int(r.headers["retry-after"]) <= 60 and body["error"]["details"]["retry_after_seconds"] >= 1
    # another account from the same address is still allowed (the address has its own, larger limit)
    api.register("bystander@example.com")
    assert api.login("bystander@example.com").status_code == 200


def test_failed_logins_are_throttled_per_address(api_factory):
    api = api_factory(login_attempts_per_address_per_minute=5)
    for i in range(5):
        assert_error(api.login(f"spray{i}@example.com", "wrong password!!"), 401)
    r = api.login("spray-next@example.com", "wrong password!!")
    assert_error(r, 429, "TOO_MANY_LOGIN_ATTEMPTS")
    assert int(r.headers["retry-after"]) >= 1


@pytest.mark.parametrize("rid,echoed", [("abc-123_X.y:z", True), ("bad id with spaces", False),
                                        ("x" * 200, False), ("", False)])
def test_request_id_is_accepted_when_plain_else_generated(api, rid, echoed):
    r = api.get("/v1/me", headers={"X-Request-ID": rid})
    body = assert_error(r, 401)
    assert (body["request_id"] == rid) is echoed
    assert 1 <= len(body["request_id"]) <= 128


def test_change_password_ends_every_session(api):
    """The command existed without a route: a user could never change their password."""
    user = api.user("pw")
    other = api.login(user.email).json()
    wrong = api.post("/v1/me/password", json={"current_password": "not my password!!", "new_password": "x" * 20},
                     headers=user.h)
    assert_error(wrong, 401, "INVALID_CREDENTIALS")
    assert_error(api.post("/v1/me/password", json={"current_password": user.password, "new_password": "short"},
                          headers=user.h), 422)
    r = api.post("/v1/me/password", json={"current_password": user.password, "new_password": "a brand new passphrase"},
                 headers=user.h)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    for token in (user.access, other["access_token"]):
        assert_error(api.get("/v1/me", headers={"Authorization": f"Bearer {token}"}), 401, "SESSION_REVOKED")
    assert_error(api.post("/v1/auth/refresh", json={"refresh_token": user.refresh}), 401, "SESSION_REVOKED")
    assert_error(api.login(user.email), 401, "INVALID_CREDENTIALS")
    assert api.login(user.email, "a brand new passphrase").status_code == 200
