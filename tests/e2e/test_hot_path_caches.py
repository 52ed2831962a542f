"""The hot read path's per-process caches (adr/0020), over HTTP on both backends: authentication and
authorisation state is cached, the resolved prompt is cached, and still every revocation, removal,
demotion or session end applies to the very next request, and a label move is served on the next
read that asks for its position. Each test warms the caches first, then changes something."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from tests.e2e.support import assert_error

WARM = 3


def fetch_path(org: str, name: str = "greet") -> str:
    return f"/v1/orgs/{org}/prompts/by-name/{name}"


def warm(api, path: str, who, **params) -> dict:
    """Fetch a few times (the caches hold the key, the org and the answer afterwards)."""
    for _ in range(WARM):
        r = api.get(path, headers=who.h, params={"label": "production", **params})
        assert r.status_code == 200, r.text
    return r


def setup(api, **org_kw):
    owner = api.user("owner")
    org = api.org(owner, **org_kw)
    pid = api.prompt(owner, org, "greet", "Hello {{name}}")
    assert api.label(owner, org, pid, "production", 1).status_code == 200
    return owner, org, pid


def hits(api) -> tuple[int, int]:
    """(resolved answers served from the fetch cache, aggregates served from the access cache)."""
    return api.app.state.fetch_cache.hits, api.container.app.access_cache.hits


def test_a_warm_cache_serves_without_loading_and_answers_identically(api):
    owner, org, pid = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    first = api.get(fetch_path(org), headers=key.h, params={"label": "production", "min_position": api.position})
    assert first.status_code == 200
    fetch_hits, access_hits = hits(api)
    again = [api.get(fetch_path(org), headers=key.h, params={"label": "production"}) for _ in range(WARM)]
    assert all(r.content == first.content and r.headers["etag"] == first.headers["etag"] for r in again)
    assert all(r.headers["cache-control"] == "private, no-cache" for r in again)
    after_fetch_hits, after_access_hits = hits(api)
    assert after_fetch_hits >= fetch_hits + WARM and after_access_hits >= access_hits + 2 * WARM
    not_modified = api.get(fetch_path(org), headers={**key.h, "If-None-Match": first.headers["etag"]},
                           params={"label": "production"})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == first.headers["etag"]


def test_a_revoked_key_is_refused_on_the_next_request(api):
    owner, org, _ = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    warm(api, fetch_path(org), key, min_position=api.position)
    assert api.delete(f"/v1/orgs/{org}/api-keys/{key.id}", headers=owner.h).status_code == 200
    assert_error(api.get(fetch_path(org), headers=key.h, params={"label": "production"}), 401, "API_KEY_REVOKED")
    etag = {"If-None-Match": "*"}
    assert_error(api.get(fetch_path(org), headers={**key.h, **etag}, params={"label": "production"}),
                 401, "API_KEY_REVOKED")


def test_a_removed_member_loses_access_on_the_next_request(api):
    owner, org, _ = setup(api)
    member = api.user("member")
    api.add(owner, org, member, "viewer")
    warm(api, fetch_path(org), member, min_position=api.position)
    assert api.delete(f"/v1/orgs/{org}/members/{member.user_id}", headers=owner.h).status_code == 200
    assert_error(api.get(fetch_path(org), headers=member.h, params={"label": "production"}), 404, "ORG_NOT_FOUND")


def test_demoting_the_issuer_narrows_the_key_and_removing_them_disables_it(api):
    owner, org, _ = setup(api)
    admin = api.user("admin")
    api.add(owner, org, admin, "admin")
    key = api.key(admin, org, ["prompts:read", "audit:read"])
    audit = f"/v1/orgs/{org}/audit-events"
    for _ in range(WARM):
        assert api.get(audit, headers=key.h, params={"min_position": api.position}).status_code == 200
    warm(api, fetch_path(org), key)
    r = api.patch(f"/v1/orgs/{org}/members/{admin.user_id}", json={"role": "developer"}, headers=owner.h)
    assert r.status_code == 200, r.text
    assert_error(api.get(audit, headers=key.h), 403, "PERMISSION_DENIED")
    assert api.get(fetch_path(org), headers=key.h, params={"label": "production"}).status_code == 200
    assert api.delete(f"/v1/orgs/{org}/members/{admin.user_id}", headers=owner.h).status_code == 200
    assert_error(api.get(fetch_path(org), headers=key.h, params={"label": "production"}), 401, "API_KEY_DISABLED")


def test_an_ended_session_is_refused_on_the_next_request(api):
    owner, org, _ = setup(api)
    other = api.user("other")
    api.add(owner, org, other, "viewer")
    warm(api, fetch_path(org), other, min_position=api.position)
    assert api.post("/v1/auth/logout", headers=other.h).status_code == 200
    assert_error(api.get(fetch_path(org), headers=other.h, params={"label": "production"}), 401, "SESSION_REVOKED")
    # "log out everywhere" ends the owner's (warm) session too, through the User aggregate.
    warm(api, fetch_path(org), owner)
    assert api.post("/v1/auth/logout-all", headers=owner.h).status_code == 200
    assert_error(api.get(fetch_path(org), headers=owner.h, params={"label": "production"}), 401, "SESSION_REVOKED")


def test_a_label_move_is_served_on_the_next_read_at_its_position(api):
    owner, org, pid = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    before = warm(api, fetch_path(org), key, min_position=api.position)
    assert before.json()["version"] == 1
    api.revise(owner, org, pid, 1, "Hi {{name}}")
    assert api.label(owner, org, pid, "production", 2).status_code == 200
    after = api.get(fetch_path(org), headers={**key.h, "If-None-Match": before.headers["etag"]},
                    params={"label": "production", "min_position": api.position})
    assert after.status_code == 200, after.text
    assert after.json()["version"] == 2 and after.json()["template"] == "Hi {{name}}"
    assert after.headers["etag"] != before.headers["etag"]
    # The same answer again, from the cache now, and 304 for its own ETag.
    assert api.get(fetch_path(org), headers=key.h, params={"label": "production"}).content == after.content
    same = api.get(fetch_path(org), headers={**key.h, "If-None-Match": after.headers["etag"]},
                   params={"label": "production"})
    assert same.status_code == 304


def test_without_min_position_the_move_is_served_once_the_catalogue_has_it(api):
    owner, org, pid = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    warm(api, fetch_path(org), key, min_position=api.position)
    api.revise(owner, org, pid, 1, "Hi {{name}}")
    assert api.label(owner, org, pid, "production", 2).status_code == 200
    deadline = time.monotonic() + 10
    while api.get(fetch_path(org), headers=key.h, params={"label": "production"}).json()["version"] != 2:
        assert time.monotonic() < deadline, "the move was never served"
        time.sleep(0.02)


def test_an_included_prompt_moving_changes_the_composed_answer(api):
    owner, org, pid = setup(api)
    base = api.prompt(owner, org, "signature", "-- Acme")
    assert api.label(owner, org, base, "production", 1).status_code == 200
    wrapper = api.prompt(owner, org, "letter", 'Dear {{name}}\n{{> signature@production}}')
    assert api.label(owner, org, wrapper, "production", 1).status_code == 200
    key = api.key(owner, org, ["prompts:read"])
    before = warm(api, fetch_path(org, "letter"), key, min_position=api.position)
    assert "-- Acme" in before.json()["template"]
    api.revise(owner, org, base, 1, "-- Acme Corp")
    assert api.label(owner, org, base, "production", 2).status_code == 200
    after = api.get(fetch_path(org, "letter"), headers={**key.h, "If-None-Match": before.headers["etag"]},
                    params={"label": "production", "min_position": api.position})
    assert after.status_code == 200, after.text
    assert "-- Acme Corp" in after.json()["template"]
    assert [d["version"] for d in after.json()["dependencies"]] == [2]
    assert after.headers["etag"] != before.headers["etag"]


def test_another_orgs_key_still_gets_404_from_a_warm_cache(api):
    owner, org, _ = setup(api)
    other_owner = api.user("other-owner")
    other_org = api.org(other_owner)
    api.prompt(other_owner, other_org, "greet", "Hello")
    key = api.key(owner, org, ["prompts:read"])
    outsider = api.key(other_owner, other_org, ["prompts:read"])
    warm(api, fetch_path(org), key, min_position=api.position)
    for _ in range(2):
        assert_error(api.get(fetch_path(org), headers=outsider.h, params={"label": "production"}), 404, "ORG_NOT_FOUND")
        assert_error(api.get(fetch_path(org), headers=other_owner.h, params={"label": "production"}),
                     404, "ORG_NOT_FOUND")


def test_time_travel_is_not_served_from_the_cache(api):
    owner, org, pid = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    warm(api, fetch_path(org), key, min_position=api.position)
    cache = api.app.state.fetch_cache
    size = len(cache)
    when = datetime.now(timezone.utc).isoformat()
    r = api.get(fetch_path(org), headers=key.h, params={"label": "production", "as_of": when})
    assert r.status_code == 200 and r.json()["as_of"] is not None
    assert len(cache) == size


def test_two_containers_on_one_store_each_see_the_others_revocations(api_factory):
    """Two API containers on the same event store and read models (as two processes, each with its
    own caches and, on SQLite, its own probe of the head): a change made through one applies to the
    very next request on the other."""
    a, b = api_factory(), api_factory()
    owner, org, _ = setup(a)
    key = a.key(owner, org, ["prompts:read"])
    member = a.user("member")
    a.add(owner, org, member, "viewer")
    for api in (a, b):
        warm(api, fetch_path(org), key, min_position=a.position)
        warm(api, fetch_path(org), member, min_position=a.position)
    assert a.delete(f"/v1/orgs/{org}/api-keys/{key.id}", headers=owner.h).status_code == 200
    assert_error(b.get(fetch_path(org), headers=key.h, params={"label": "production"}), 401, "API_KEY_REVOKED")
    assert a.delete(f"/v1/orgs/{org}/members/{member.user_id}", headers=owner.h).status_code == 200
    assert_error(b.get(fetch_path(org), headers=member.h, params={"label": "production"}), 404, "ORG_NOT_FOUND")


QUERIES = [
    {}, {"label": "production"}, {"label": "PRODUCTION"}, {"label": "nope"}, {"label": "x" * 65}, {"label": ""},
    {"version": "1"}, {"version": "01"}, {"version": "0"}, {"version": "9"}, {"version": "abc"},
    {"version": str(2**31)}, {"label": "production", "version": "1"}, {"resolve": "false"}, {"resolve": "True"},
    {"resolve": "0"}, {"resolve": "maybe"}, {"label": "production", "split_key": "user-1"},
    {"split_key": "k" * 201}, {"min_position": "1"}, {"min_position": "-1"}, {"min_position": "x"},
    {"min_position": str(2**63)}, {"as_of": "2020-01-01T00:00:00Z"}, {"label": "production", "other": "ignored"},
]
HEADERS = [{}, {"If-None-Match": "*"}, {"If-None-Match": '"nope"'}, {"X-Min-Position": "1"},
           {"X-Min-Position": "x"}, {"If-None-Match": "x" * 1025}]


def test_the_fast_path_answers_exactly_as_fastapi_does(api):
    """interfaces.http.fast_route: plain parameters are parsed by hand, anything else goes through
    FastAPI; with a dependency override installed everything does. Both must answer alike."""
    owner, org, _ = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    warm(api, fetch_path(org), key, min_position=api.position)

    def answers() -> list:
        out = []
        for params in QUERIES:
            for headers in HEADERS:
                r = api.get(fetch_path(org), headers={**key.h, **headers}, params=params)
                body = r.json() if r.content else None
                if isinstance(body, dict):
                    body.pop("request_id", None)
                out.append((params, headers, r.status_code, body, r.headers.get("etag"),
                            r.headers.get("cache-control"), r.headers.get("content-type")))
        return out

    fast = answers()
    api.app.dependency_overrides[object] = object  # any override: the general path only
    try:
        general = answers()
    finally:
        api.app.dependency_overrides.clear()
    for f, g in zip(fast, general):
        assert f == g, (f, g)
    assert {a[2] for a in fast} >= {200, 304, 400, 404}


def test_the_hot_fetch_counts_its_rate_limits_in_redis_like_every_route(api_factory, redis_url, monkeypatch):
    """Served on the event loop (async Redis, adr/0020), the fetch counts in the same buckets as the
    routes counted in the thread pool: the key's bucket and the organisation's, then 429."""
    api = api_factory(redis_url=redis_url, rate_limit_per_minute=10)
    owner, org, _ = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    remaining = []
    for _ in range(3):
        r = api.get(fetch_path(org), headers=key.h, params={"label": "production", "min_position": api.position})
        assert r.status_code == 200, r.text
        remaining.append(int(r.headers["RateLimit-Remaining"]))
    # the org's bucket also holds the owner's set-up commands: the most constrained bucket is shown
    assert remaining == sorted(remaining, reverse=True) and remaining[0] - remaining[-1] == 2
    # warm: answered on the event loop from now on, never through the thread pool's blocking client
    monkeypatch.setattr(api.app.state.rate_limiter, "hit_pair", None)
    answers = [api.get(fetch_path(org), headers=key.h, params={"label": "production"}) for _ in range(10)]
    refused = [r for r in answers if r.status_code == 429]
    assert refused and all(r.json()["error"]["code"] == "RATE_LIMITED" and r.headers["Retry-After"] for r in refused)
    assert_error(api.get(fetch_path(org), headers=key.h, params={"label": "production"}), 429, "RATE_LIMITED")


def test_the_hot_fetch_fails_open_when_redis_is_down(api_factory):
    api = api_factory(redis_url="redis://127.0.0.1:1/0", rate_limit_per_minute=1)
    owner, org, _ = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    for _ in range(3):  # over the unenforced limit of 1
        r = api.get(fetch_path(org), headers=key.h, params={"label": "production", "min_position": api.position})
        assert r.status_code == 200, r.text


def test_writes_to_other_prompts_leave_a_warm_answer_cached(api):
    """Each answer depends on the prompts it was computed from only: creating, revising and moving
    labels of other prompts, here and in another organisation, does not cost it a recomputation."""
    owner, org, _ = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    before = warm(api, fetch_path(org), key, min_position=api.position)
    other = api.prompt(owner, org, "farewell", "Bye {{name}}")
    api.revise(owner, org, other, 1, "Goodbye {{name}}")
    assert api.label(owner, org, other, "production", 2).status_code == 200
    stranger = api.user("stranger")
    elsewhere = api.org(stranger)
    api.prompt(stranger, elsewhere, "greet", "Howdy")
    misses = api.app.state.fetch_cache.misses
    for _ in range(WARM):
        r = api.get(fetch_path(org), headers=key.h, params={"label": "production", "min_position": api.position})
        assert r.status_code == 200 and r.content == before.content
    assert api.app.state.fetch_cache.misses == misses  # every one a hit


def test_renaming_the_prompt_changes_the_answer_served_under_its_old_name(api):
    owner, org, pid = setup(api)
    key = api.key(owner, org, ["prompts:read"])
    assert warm(api, fetch_path(org), key, min_position=api.position).json()["name"] == "greet"
    r = api.post(f"/v1/orgs/{org}/prompts/{pid}/rename", headers=owner.h, json={"name": "welcome"})
    assert r.status_code == 200, r.text
    api.position = max(api.position, r.json()["position"])
    after = api.get(fetch_path(org), headers=key.h, params={"label": "production", "min_position": api.position})
    assert after.status_code == 200 and after.json()["name"] == "welcome"
