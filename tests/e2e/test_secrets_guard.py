"""No response, log line or audit row carries a password, a token, a raw API key or a key hash.

The flow exercises every place a secret passes through (register, failed and throttled logins,
refresh, key issue/use/revoke, validation errors on secret fields) with logging at DEBUG for every
logger, then searches every response (bar the one that legitimately hands each secret out), every
captured log record and every row of every read-model table (the audit log included)."""
from __future__ import annotations

import hashlib
import logging

from sqlalchemy import select

from projections.db import metadata
from tests.e2e.support import PASSWORD


def test_no_secret_leaks_anywhere(api_factory, caplog):
    caplog.set_level(logging.DEBUG)
    api = api_factory(login_attempts_per_minute=2)
    responses = []
    issued = []

    def keep(response, hands_out_secrets: bool = False):
        (issued if hands_out_secrets else responses).append(response)
        return response

    wrong = "definitely-the-wrong-password"
    too_long = "L0ng-" + "p" * 1100
    weak = "weakpw"
    email = "secret-keeper@example.com"
    keep(api.post("/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "Keeper"}))
    keep(api.post("/v1/auth/register", json={"email": "x@example.com", "password": too_long}))
    keep(api.post("/v1/auth/register", json={"email": "y@example.com", "password": weak}))
    keep(api.post("/v1/auth/register", json={"email": "z@example.com", "password": PASSWORD, "role": PASSWORD}))
    login = api.login(email)
    pair = login.json()
    keep(login, True)
    keep(api.login(email, wrong))
    keep(api.login(email, wrong))
    keep(api.login(email, wrong))  # throttled now
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    rotated = api.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    keep(rotated, True)
    new_pair = rotated.json()
    h = {"Authorization": f"Bearer {new_pair['access_token']}"}
    org = keep(api.post("/v1/orgs", json={"name": "Vault"}, headers=h)).json()["id"]
    keep(api.post(f"/v1/orgs/{org}/prompts", json={"name": "p", "template": "t {{x}}"}, headers=h))
    issued_key = api.post(f"/v1/orgs/{org}/api-keys", json={"name": "k", "permissions": ["prompts:read"]}, headers=h)
    keep(issued_key, True)
    raw = issued_key.json()["key"]
    key_id = issued_key.json()["id"]
    secret_part = raw.split("_", 2)[2]
    key_hash = hashlib.sha256(secret_part.encode()).hexdigest()
    kh = {"Authorization": f"Bearer {raw}"}
    keep(api.get(f"/v1/orgs/{org}/prompts", headers=kh, params={"min_position": api.position}))
    keep(api.get(f"/v1/orgs/{org}/api-keys", headers=h, params={"min_position": api.position}))
    keep(api.delete(f"/v1/orgs/{org}/api-keys/{key_id}", headers=h))
    keep(api.get(f"/v1/orgs/{org}/prompts", headers=kh))  # revoked
    keep(api.get("/v1/me", headers={"Authorization": f"Bearer {raw}x"}))
    keep(api.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}))  # reuse
    keep(api.get("/v1/auth/sessions", headers=h))
    keep(api.get(f"/v1/orgs/{org}/audit-events", headers=h))
    user = api.container.app.get_user(api.container.app.find_user_id(email))
    api.container.supervisor.wait_for(api.position, 10)

    secrets = {
        "password": PASSWORD, "wrong password": wrong, "too long password": too_long, "weak password": weak,
        "access token": pair["access_token"], "refresh token": pair["refresh_token"],
        "rotated access token": new_pair["access_token"], "rotated refresh token": new_pair["refresh_token"],
        "raw key": raw, "key secret": secret_part, "key hash": key_hash, "password hash": user.password_hash,
    }
    # 1. responses
    for response in responses:
        blob = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        for what, secret in secrets.items():
            assert secret not in blob, (what, response.request.method, str(response.request.url))
    for response in issued:  # the handing-out responses carry only their own secret
        assert PASSWORD not in response.text and key_hash not in response.text
        assert user.password_hash not in response.text
    # 2. log records (message, args and tracebacks), at DEBUG for every logger
    log_text = caplog.text + "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in caplog.records)
    assert caplog.records, "expected access-log lines"
    for what, secret in secrets.items():
        assert secret not in log_text, what
    # 3. every row of every read-model table (the audit log included)
    with api.container.engine.connect() as conn:
        rows = [repr(tuple(r)) for table in metadata.sorted_tables for r in conn.execute(select(table))]
    audit_rows = [r for r in rows if "user:" in r]
    assert audit_rows, "expected audit rows"
    dump = "\n".join(rows)
    for what, secret in secrets.items():
        assert secret not in dump, what
