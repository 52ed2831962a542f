"""API keys are bound to their issuer (adr/0009): a key may never do more than the member who issued
it may do NOW; removing or demoting the issuer narrows or disables the key on the very next request;
keys cannot mint keys. Plus: refused keys cost no memory, and unauthenticated requests are counted
once by the rate limiter."""
from __future__ import annotations

import pytest

import gc
import tracemalloc
import uuid

from tests.e2e.support import assert_error

MANAGE = ["prompts:read", "members:manage", "api_keys:manage"]


def test_removing_the_issuer_disables_the_key_at_once(api):
    """The reported hole: an admin's members:manage key re-added the admin after the owner removed
    them (201). Now the key is refused on the very next request."""
    owner, admin, friend = api.user("owner"), api.user("admin"), api.user("friend")
    org = api.org(owner)
    api.add(owner, org, admin, "admin")
    key = api.key(admin, org, MANAGE, name="admin-automation")
    assert api.get(f"/v1/orgs/{org}/members", headers=key.h, params={"min_position": api.position}).status_code == 200

    assert api.delete(f"/v1/orgs/{org}/members/{admin.user_id}", headers=owner.h).status_code == 200
    readd = api.post(f"/v1/orgs/{org}/members", json={"user_id": admin.user_id, "role": "admin"}, headers=key.h)
    assert_error(readd, 401, "API_KEY_DISABLED")
    for method, path in (("GET", f"/v1/orgs/{org}/members"), ("GET", f"/v1/orgs/{org}"), ("GET", "/v1/orgs"),
                         ("POST", f"/v1/orgs/{org}/members")):
        body = {"email": friend.email, "role": "viewer"} if method == "POST" else None
        assert_error(api.request(method, path, json=body, headers=key.h), 401, "API_KEY_DISABLED")
    members = api.q(f"/v1/orgs/{org}/members", owner).json()["items"]
    assert {m["user_id"] for m in members} == {owner.user_id}

    # Re-adding the issuer (by the owner) brings the key back, within the issuer's new role.
    api.add(owner, org, admin, "viewer")
    assert api.get(f"/v1/orgs/{org}/members", headers=key.h, params={"min_position": api.position}).status_code == 200
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"email": friend.email, "role": "viewer"}, headers=key.h),
                 403, "PERMISSION_DENIED")


def test_demoting_the_issuer_narrows_the_key(api):
    owner, admin = api.user("owner"), api.user("admin")
    org = api.org(owner)
    api.add(owner, org, admin, "admin")
    key = api.key(admin, org, [*MANAGE, "prompts:write"], name="narrowing")
    assert api.get(f"/v1/orgs/{org}", headers=key.h).json()["permissions"] == sorted([*MANAGE, "prompts:write"])

    r = api.patch(f"/v1/orgs/{org}/members/{admin.user_id}", json={"role": "developer"}, headers=owner.h)
    assert r.status_code == 200
    # developer = prompts:read + prompts:write: the key keeps exactly its own ∩ those
    assert api.get(f"/v1/orgs/{org}", headers=key.h).json()["permissions"] == ["prompts:read", "prompts:write"]
    assert_error(api.get(f"/v1/orgs/{org}/api-keys", headers=key.h), 403, "PERMISSION_DENIED")
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"email": owner.email, "role": "viewer"}, headers=key.h),
                 403, "PERMISSION_DENIED")
    assert api.post(f"/v1/orgs/{org}/prompts", json={"name": "still-writes", "template": "t"},
                    headers=key.h).status_code == 201


def test_keys_cannot_mint_keys(api):
    """A key minted by a key would outlive the person answerable for it: refused (adr/0009)."""
    owner = api.user("owner")
    org = api.org(owner)
    key = api.key(owner, org, MANAGE)
    assert_error(api.post(f"/v1/orgs/{org}/api-keys", json={"name": "child", "permissions": ["prompts:read"]},
                          headers=key.h), 403, "USER_TOKEN_REQUIRED")
    # ... while revoking keys with a key (api_keys:manage) still works
    other = api.key(owner, org, ["prompts:read"], name="other")
    assert api.delete(f"/v1/orgs/{org}/api-keys/{other.id}", headers=key.h).status_code == 200
    assert_error(api.get(f"/v1/orgs/{org}/prompts", headers=other.h), 401, "API_KEY_REVOKED")


def test_two_thousand_bad_keys_leave_memory_flat(api):
    """A module-level exception instance, raised for every bad key, kept every traceback it was
    raised with: 2,000 requests with `Bearer pfk_<32 hex>_x` added 27 MB. Fresh exceptions keep
    memory flat."""
    headers = {"Authorization": f"Bearer pfk_{uuid.uuid4().hex}_x"}
    url = f"/v1/orgs/{uuid.uuid4()}/prompts"
    for _ in range(200):  # warm up caches, pools, lazily built structures
        assert api.client.get(url, headers=headers).status_code == 401
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2_000):
            api.client.get(url, headers=headers)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 2_000_000, f"memory grew by {grown:,} bytes over 2,000 refused keys"


@pytest.mark.parametrize("storage", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_unauthenticated_requests_are_counted_once(api_factory, storage, request):
    """The middleware counts a request without credentials per address; the dependency used to count
    it again (429 after 300 of a documented 600/min, RateLimit-Remaining dropping by 2). On Redis the
    middleware counts on the event loop (async client), in the same bucket."""
    redis_url = request.getfixturevalue("redis_url") if storage == "redis" else None
    api = api_factory(rate_limit_per_minute=10, redis_url=redis_url)
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        for stale in client.scan_iter("LIMITS:pf-rl-addr*"):  # address buckets left by earlier tests
            client.delete(stale)
        api.app.state.rate_limiter.hit = None  # the blocking client is never used on the event loop
    remaining = []
    for _ in range(4):
        r = api.client.get(f"/v1/orgs/{uuid.uuid4()}/prompts")
        assert_error(r, 401, "UNAUTHENTICATED")
        remaining.append(int(r.headers["RateLimit-Remaining"]))
    assert remaining == [9, 8, 7, 6]
