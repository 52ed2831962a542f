"""JSON logs: request id (client's or generated) in the access line and in the events' `request_id`
(audit read model), the caller's user/org ids, and no secret in any line of a full flow."""
from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from interfaces.observability.logs import JsonFormatter
from projections.audit import audit_log
from tests.e2e.support import PASSWORD


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every log record of the test, formatted by the production JSON formatter, at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _records(stream: io.StringIO) -> list[dict]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_request_id_reaches_logs_and_events(api, json_lines):
    owner = api.user()
    org = api.org(owner)
    r = api.post(f"/v1/orgs/{org}/prompts", json={"name": "traced", "template": "t {{x}}"},
                 headers={**owner.h, "X-Request-ID": "req-trace-42"})
    assert r.status_code == 201 and r.headers["X-Request-ID"] == "req-trace-42"
    prompt_id = r.json()["id"]
    api.container.supervisor.wait_for(api.position, 10)
    with api.container.engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.request_id, audit_log.c.action)
                            .where(audit_log.c.target_id == prompt_id)).all()
    assert rows and all(row.request_id == "req-trace-42" for row in rows), rows
    access = [rec for rec in _records(json_lines) if rec.get("route") == "/v1/orgs/{org_id}/prompts"]
    assert access, "expected the access line of the create"
    line = access[-1]
    assert line["request_id"] == "req-trace-42" and line["method"] == "POST" and line["status"] == 201
    assert line["user_id"] == owner.user_id and line["org_id"] == org
    assert line["level"] == "info" and "duration_ms" in line and line["ts"]
    # A generated id is used the same way when the client sends none.
    r = api.get("/v1/me", headers=owner.h)
    generated = r.headers["X-Request-ID"]
    assert any(rec.get("request_id") == generated and rec.get("route") == "/v1/me" for rec in _records(json_lines))


def test_no_secret_in_json_logs_of_a_full_flow(api_factory, json_lines):
    api = api_factory(login_attempts_per_minute=2)
    email = "json-keeper@example.com"
    wrong = "definitely-the-wrong-password"
    assert api.post("/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    api.post("/v1/auth/register", json={"email": "weak@example.com", "password": "weakpw"})
    pair = api.login(email).json()
    for _ in range(3):
        api.login(email, wrong)  # the last one is throttled
    rotated = api.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    h = {"Authorization": f"Bearer {rotated['access_token']}"}
    org = api.post("/v1/orgs", json={"name": "Vault"}, headers=h).json()["id"]
    api.post(f"/v1/orgs/{org}/prompts", json={"name": "p", "template": "t {{x}}"}, headers=h)
    issued = api.post(f"/v1/orgs/{org}/api-keys", json={"name": "k", "permissions": ["prompts:read"]}, headers=h).json()
    raw = issued["key"]
    api.get(f"/v1/orgs/{org}/prompts", headers={"Authorization": f"Bearer {raw}"})
    api.get("/v1/me", headers={"Authorization": f"Bearer {raw}x"})
    api.delete(f"/v1/orgs/{org}/api-keys/{issued['id']}", headers=h)
    api.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})  # reuse -> revoked family
    api.get("/metrics")
    api.container.supervisor.wait_for(api.position, 10)
    secret_part = raw.split("_", 2)[2]
    user = api.container.app.get_user(api.container.app.find_user_id(email))
    secrets = {
        "password": PASSWORD, "wrong password": wrong, "weak password": "weakpw",
        "access token": pair["access_token"], "refresh token": pair["refresh_token"],
        "rotated access": rotated["access_token"], "rotated refresh": rotated["refresh_token"],
        "raw key": raw, "key secret": secret_part, "key hash": hashlib.sha256(secret_part.encode()).hexdigest(),
        "password hash": user.password_hash, "jwt secret": api.container.settings.jwt_secret,
    }
    records = _records(json_lines)
    assert len(records) > 10 and any(rec.get("request_id") for rec in records)
    text = json_lines.getvalue()
    for what, secret in secrets.items():
        assert secret not in text, what
