"""Organisations, members and roles, plans and their limits, over HTTP."""
from __future__ import annotations

from tests.e2e.support import assert_error


def test_create_list_get_and_rename_an_org(api):
    owner = api.user("owner")
    r = api.post("/v1/orgs", json={"name": "  Acme  "}, headers=owner.h)
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "Acme" and body["plan"] == "FREE" and body["role"] == "owner"
    assert r.headers["x-event-position"] == str(body["position"])
    org = body["id"]
    listed = api.q("/v1/orgs", owner).json()["items"]
    assert listed == [{"id": org, "name": "Acme", "plan": "FREE", "role": "owner"}]
    got = api.get(f"/v1/orgs/{org}", headers=owner.h).json()
    assert got["limits"] == {"members": 5, "prompts": 100, "api_keys": 3}
    assert got["usage"] == {"members": 1, "prompts": 0, "api_keys": 0}
    assert "org:manage" in got["permissions"] and got["role"] == "owner"
    r = api.patch(f"/v1/orgs/{org}", json={"name": "Acme Inc."}, headers=owner.h)
    assert r.status_code == 200 and r.json()["position"] > body["position"]
    assert api.get(f"/v1/orgs/{org}", headers=owner.h).json()["name"] == "Acme Inc."
    assert_error(api.patch(f"/v1/orgs/{org}", json={}, headers=owner.h), 422, "EMPTY_PATCH")
    assert_error(api.patch(f"/v1/orgs/{org}", json={"name": "x", "owner": "me"}, headers=owner.h), 422,
                 "VALIDATION_ERROR")
    assert_error(api.patch(f"/v1/orgs/{org}", json={"plan": "GOLD"}, headers=owner.h), 422, "UNKNOWN_PLAN")
    assert_error(api.post("/v1/orgs", json={"name": "a/b"}, headers=owner.h), 422, "INVALID_NAME")


def test_only_owners_manage_the_org(api):
    owner, admin = api.user("owner"), api.user("admin")
    org = api.org(owner)
    api.add(owner, org, admin, "admin")
    for body in ({"name": "Hijacked"}, {"plan": "PRO"}):
        assert_error(api.patch(f"/v1/orgs/{org}", json=body, headers=admin.h), 403, "PERMISSION_DENIED")
    assert api.patch(f"/v1/orgs/{org}", json={"plan": "PRO"}, headers=owner.h).status_code == 200
    assert api.get(f"/v1/orgs/{org}", headers=admin.h).json()["plan"] == "PRO"


def test_members_add_change_remove_and_owner_rules(api):
    owner, admin, dev, other = api.user("owner"), api.user("admin"), api.user("dev"), api.user("other")
    org = api.org(owner)
    api.add(owner, org, admin, "admin")
    # admins manage members but cannot grant or touch owners
    r = api.post(f"/v1/orgs/{org}/members", json={"user_id": dev.user_id, "role": "developer"}, headers=admin.h)
    assert r.status_code == 201 and r.json() == {"user_id": dev.user_id, "role": "developer",
                                                 "position": r.json()["position"]}
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"email": other.email, "role": "owner"}, headers=admin.h),
                 403, "OWNER_ROLE_REQUIRED")
    assert_error(api.patch(f"/v1/orgs/{org}/members/{owner.user_id}", json={"role": "viewer"}, headers=admin.h),
                 403, "OWNER_ROLE_REQUIRED")
    assert_error(api.delete(f"/v1/orgs/{org}/members/{owner.user_id}", headers=admin.h), 403, "OWNER_ROLE_REQUIRED")
    # duplicates, unknown users, bad roles, bodies naming both or neither target
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"email": dev.email, "role": "viewer"}, headers=admin.h),
                 409, "MEMBER_EXISTS")
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"email": "ghost@example.com", "role": "viewer"},
                          headers=admin.h), 404, "USER_NOT_FOUND")
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"email": other.email, "role": "god"}, headers=admin.h),
                 422, "UNKNOWN_ROLE")
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"role": "viewer"}, headers=admin.h), 422)
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"email": other.email, "user_id": other.user_id,
                                                          "role": "viewer"}, headers=admin.h), 422)
    # a developer cannot manage members
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"email": other.email, "role": "viewer"}, headers=dev.h),
                 403, "PERMISSION_DENIED")
    # role change emits MemberRoleChanged
    r = api.patch(f"/v1/orgs/{org}/members/{dev.user_id}", json={"role": "reviewer"}, headers=admin.h)
    assert r.status_code == 200 and r.json()["role"] == "reviewer"
    audit = api.q(f"/v1/orgs/{org}/audit-events", owner, params={"action": "organisation.member_role_changed"})
    (event,) = audit.json()["items"]
    assert event["details"] == {"user_id": dev.user_id, "old_role": "developer", "new_role": "reviewer"}
    members = {m["user_id"]: m["role"] for m in api.q(f"/v1/orgs/{org}/members", dev).json()["items"]}
    assert members == {owner.user_id: "owner", admin.user_id: "admin", dev.user_id: "reviewer"}
    # removal; unknown member ids are 404
    assert api.delete(f"/v1/orgs/{org}/members/{dev.user_id}", headers=admin.h).status_code == 200
    assert_error(api.get(f"/v1/orgs/{org}", headers=dev.h), 404, "ORG_NOT_FOUND")
    assert_error(api.patch(f"/v1/orgs/{org}/members/{dev.user_id}", json={"role": "viewer"}, headers=admin.h),
                 404, "MEMBER_NOT_FOUND")
    assert_error(api.delete(f"/v1/orgs/{org}/members/not-a-uuid", headers=admin.h), 404, "MEMBER_NOT_FOUND")


def test_last_owner_protection(api):
    owner, second = api.user("owner"), api.user("second")
    org = api.org(owner)
    assert_error(api.patch(f"/v1/orgs/{org}/members/{owner.user_id}", json={"role": "admin"}, headers=owner.h),
                 409, "LAST_OWNER")
    assert_error(api.delete(f"/v1/orgs/{org}/members/{owner.user_id}", headers=owner.h), 409, "LAST_OWNER")
    api.add(owner, org, second, "owner")
    assert api.patch(f"/v1/orgs/{org}/members/{owner.user_id}", json={"role": "admin"},
                     headers=second.h).status_code == 200
    assert_error(api.delete(f"/v1/orgs/{org}/members/{second.user_id}", headers=second.h), 409, "LAST_OWNER")


def test_free_plan_member_limit_and_upgrade(api):
    owner = api.user("owner")
    org = api.org(owner)
    for i in range(4):
        api.add(owner, org, api.user(f"m{i}"), "viewer")
    extra = api.user("extra")
    body = assert_error(api.post(f"/v1/orgs/{org}/members", json={"email": extra.email, "role": "viewer"},
                                 headers=owner.h), 409, "PLAN_LIMIT_EXCEEDED")
    assert body["error"]["details"] == {"resource": "members", "limit": 5}
    assert api.patch(f"/v1/orgs/{org}", json={"plan": "PRO"}, headers=owner.h).status_code == 200
    api.add(owner, org, extra, "viewer")
    assert_error(api.patch(f"/v1/orgs/{org}", json={"plan": "FREE"}, headers=owner.h), 409, "PLAN_DOWNGRADE_BLOCKED")


def test_non_members_get_404_for_the_org(api):
    owner, stranger = api.user("owner"), api.user("stranger")
    org = api.org(owner, "Secret Org")
    for method, url, body in (("GET", f"/v1/orgs/{org}", None), ("PATCH", f"/v1/orgs/{org}", {"name": "x"}),
                              ("GET", f"/v1/orgs/{org}/members", None),
                              ("POST", f"/v1/orgs/{org}/members", {"email": stranger.email, "role": "owner"})):
        r = api.request(method, url, json=body, headers=stranger.h)
        assert_error(r, 404, "ORG_NOT_FOUND")
        assert "Secret Org" not in r.text
    assert api.q("/v1/orgs", stranger).json()["items"] == []
    assert_error(api.get("/v1/orgs/not-a-uuid", headers=owner.h), 404, "ORG_NOT_FOUND")


def test_idempotent_org_creation(api):
    owner = api.user()
    h = {**owner.h, "Idempotency-Key": "org-create-1"}
    first = api.post("/v1/orgs", json={"name": "Once"}, headers=h)
    again = api.post("/v1/orgs", json={"name": "Once"}, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotency-replayed"] == "true" and "idempotency-replayed" not in first.headers
    assert again.json()["id"] == first.json()["id"] and again.json()["name"] == "Once"
    assert_error(api.post("/v1/orgs", json={"name": "Twice"}, headers=h), 409, "IDEMPOTENCY_KEY_REUSED")
    assert len(api.q("/v1/orgs", owner).json()["items"]) == 1
    # another user's identical key is another org
    other = api.user()
    assert api.post("/v1/orgs", json={"name": "Once"}, headers={**other.h, "Idempotency-Key": "org-create-1"}
                    ).json()["id"] != first.json()["id"]
    assert_error(api.post("/v1/orgs", json={"name": "x"}, headers={**owner.h, "Idempotency-Key": "bad key"}),
                 400, "INVALID_IDEMPOTENCY_KEY")


def test_idempotent_member_add_replays_instead_of_member_exists(api):
    owner, dev = api.user("owner"), api.user("dev")
    org = api.org(owner)
    body = {"email": dev.email, "role": "developer"}
    headers = {**owner.h, "Idempotency-Key": "add-dev"}
    first = api.post(f"/v1/orgs/{org}/members", json=body, headers=headers)
    again = api.post(f"/v1/orgs/{org}/members", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.headers["Idempotency-Replayed"] == "true" and again.json()["user_id"] == first.json()["user_id"]
    other = api.post(f"/v1/orgs/{org}/members", json={**body, "role": "viewer"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    plain = api.post(f"/v1/orgs/{org}/members", json=body, headers=owner.h)
    assert plain.status_code == 409 and plain.json()["error"]["code"] == "MEMBER_EXISTS"
