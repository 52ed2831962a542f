"""API keys over HTTP: shown once, metadata only, permissions, own org only, revocation at once."""
from __future__ import annotations

from tests.e2e.support import assert_error


def test_issue_list_use_and_revoke(api):
    owner = api.user("owner")
    org = api.org(owner)
    pid = api.prompt(owner, org, "greet")
    r = api.post(f"/v1/orgs/{org}/api-keys", json={"name": "fetcher", "permissions": ["prompts:read"]},
                 headers=owner.h)
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    created = r.json()
    raw = created["key"]
    assert raw.startswith(created["prefix"]) and created["permissions"] == ["prompts:read"]
    key_h = {"Authorization": f"Bearer {raw}"}
    # listing is metadata only: never the key, never its hash
    listed = api.q(f"/v1/orgs/{org}/api-keys", owner)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert set(item) == {"id", "name", "prefix", "permissions", "created_at", "created_by", "revoked_at",
                         "revoked_by"}
    assert raw not in listed.text and raw.split("_", 2)[2] not in listed.text
    # what the key allows, and what it does not
    assert api.get(f"/v1/orgs/{org}/prompts/{pid}", headers=key_h, params={"min_position": api.position}
                   ).status_code == 200
    assert_error(api.post(f"/v1/orgs/{org}/prompts", json={"name": "x", "template": "t"}, headers=key_h),
                 403, "PERMISSION_DENIED")
    assert_error(api.get(f"/v1/orgs/{org}/api-keys", headers=key_h), 403, "PERMISSION_DENIED")
    assert_error(api.get(f"/v1/orgs/{org}/audit-events", headers=key_h), 403, "PERMISSION_DENIED")
    assert api.get("/v1/orgs", headers=key_h).json()["items"][0]["id"] == org
    # revocation applies on the very next request
    r = api.delete(f"/v1/orgs/{org}/api-keys/{created['id']}", headers=owner.h)
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert_error(api.get(f"/v1/orgs/{org}/prompts/{pid}", headers=key_h), 401, "API_KEY_REVOKED")
    assert_error(api.delete(f"/v1/orgs/{org}/api-keys/{created['id']}", headers=owner.h), 409, "API_KEY_REVOKED")
    revoked = api.q(f"/v1/orgs/{org}/api-keys", owner).json()["items"][0]
    assert revoked["revoked_at"] is not None and revoked["revoked_by"] == f"user:{owner.user_id}"
    active = api.q(f"/v1/orgs/{org}/api-keys", owner, params={"include_revoked": "false"}).json()["items"]
    assert active == []


def test_key_permissions_are_a_subset_of_the_creators(api):
    owner, admin = api.user("owner"), api.user("admin")
    org = api.org(owner)
    api.add(owner, org, admin, "admin")
    body = assert_error(api.post(f"/v1/orgs/{org}/api-keys", json={"name": "k", "permissions": ["org:manage"]},
                                 headers=admin.h), 403, "PERMISSION_ESCALATION")
    assert body["error"]["details"]["not_held"] == ["org:manage"]
    assert_error(api.post(f"/v1/orgs/{org}/api-keys", json={"name": "k", "permissions": ["root"]},
                          headers=admin.h), 422, "UNKNOWN_PERMISSION")
    dev = api.user("dev")
    api.add(owner, org, dev, "developer")
    assert_error(api.post(f"/v1/orgs/{org}/api-keys", json={"name": "k", "permissions": ["prompts:read"]},
                          headers=dev.h), 403, "PERMISSION_DENIED")


def test_key_works_only_in_its_own_org(api):
    owner = api.user("owner")
    org_a, org_b = api.org(owner, "A"), api.org(owner, "B")
    pid_b = api.prompt(owner, org_b, "b-prompt")
    key = api.key(owner, org_a, ["prompts:read", "prompts:write"])
    for url in (f"/v1/orgs/{org_b}", f"/v1/orgs/{org_b}/prompts", f"/v1/orgs/{org_b}/prompts/{pid_b}",
                f"/v1/orgs/{org_b}/prompts/by-name/b-prompt"):
        r = api.get(url, headers=key.h)
        assert_error(r, 404)
        assert "b-prompt" not in r.text
    # and inside its own org's URL, the other org's prompt does not exist either
    assert_error(api.get(f"/v1/orgs/{org_a}/prompts/{pid_b}", headers=key.h, params={"min_position": api.position}),
                 404, "PROMPT_NOT_FOUND")


def test_key_with_write_and_promote_acts_in_its_org(api):
    owner = api.user("owner")
    org = api.org(owner)
    key = api.key(owner, org, ["prompts:read", "prompts:write"])
    pid = api.prompt(key, org, "by-key")
    assert_error(api.label(key, org, pid, "production", 1), 403, "PERMISSION_DENIED")
    assert api.label(key, org, pid, "staging", 1).status_code == 200
    audit = api.q(f"/v1/orgs/{org}/audit-events", owner, params={"actor": f"api_key:{key.id}"}).json()["items"]
    assert {e["action"] for e in audit} >= {"prompt.created", "prompt.label_moved"}


def test_idempotent_issue_never_returns_the_secret_twice(api):
    owner = api.user("owner")
    org = api.org(owner)
    h = {**owner.h, "Idempotency-Key": "key-1"}
    body = {"name": "ci", "permissions": ["prompts:read"]}
    first = api.post(f"/v1/orgs/{org}/api-keys", json=body, headers=h)
    again = api.post(f"/v1/orgs/{org}/api-keys", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert first.json()["key"] and again.json()["key"] is None
    assert again.headers["idempotency-replayed"] == "true"
    assert {k: v for k, v in again.json().items() if k not in ("key", "position")} == \
        {k: v for k, v in first.json().items() if k not in ("key", "position")}
    assert first.json()["key"] not in again.text
    assert_error(api.post(f"/v1/orgs/{org}/api-keys", json={**body, "name": "other"}, headers=h),
                 409, "IDEMPOTENCY_KEY_REUSED")


def test_free_plan_key_limit(api):
    owner = api.user("owner")
    org = api.org(owner)
    keys = [api.key(owner, org, ["prompts:read"], name=f"k{i}") for i in range(3)]
    assert_error(api.post(f"/v1/orgs/{org}/api-keys", json={"name": "k4", "permissions": []}, headers=owner.h),
                 409, "PLAN_LIMIT_EXCEEDED")
    api.delete(f"/v1/orgs/{org}/api-keys/{keys[0].id}", headers=owner.h)
    assert api.post(f"/v1/orgs/{org}/api-keys", json={"name": "k4", "permissions": []}, headers=owner.h
                    ).status_code == 201


def test_bad_keys_are_401(api):
    owner = api.user("owner")
    org = api.org(owner)
    key = api.key(owner, org, ["prompts:read"])
    prefix, key_hex, secret = key.raw.split("_", 2)
    for raw in (f"{prefix}_{key_hex}_wrong-secret", f"{prefix}_{'0' * 32}_{secret}", "pfk_short", "pfk_" + "z" * 32
                + "_x", f"{prefix}_{key_hex}"):
        assert_error(api.get(f"/v1/orgs/{org}/prompts", headers={"Authorization": f"Bearer {raw}"}), 401)
    assert_error(api.delete(f"/v1/orgs/{org}/api-keys/not-a-uuid", headers=owner.h), 404, "API_KEY_NOT_FOUND")
