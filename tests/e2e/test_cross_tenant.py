"""Cross-tenant matrix: every org-scoped route x another org's ids x every role (and an API key).

1. The foreign org's own URLs: always 404, whoever asks.
2. Our org's URLs naming the foreign org's prompt / key / member / prompt name: answered exactly as
   for an id that exists nowhere (404, or the caller's own 403 when the role lacks the permission),
   so nothing reveals that the foreign thing exists.
In both, no response body carries any of the foreign org's ids, names or content.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from tests.e2e.support import Api, Key, User, assert_error

ROLES = ("owner", "admin", "developer", "reviewer", "viewer")
ALL_PERMISSIONS = ["prompts:read", "prompts:write", "prompts:promote", "members:manage", "api_keys:manage",
                   "audit:read", "org:manage"]

#: (method, path, body) for every org-scoped route; {placeholders} are filled per case.
ROUTES = [
    ("GET", "/v1/orgs/{org}", None),
    ("PATCH", "/v1/orgs/{org}", {"name": "Renamed"}),
    ("GET", "/v1/orgs/{org}/members", None),
    ("POST", "/v1/orgs/{org}/members", {"email": "{newcomer}", "role": "viewer"}),
    ("PATCH", "/v1/orgs/{org}/members/{user}", {"role": "viewer"}),
    ("DELETE", "/v1/orgs/{org}/members/{user}", None),
    ("GET", "/v1/orgs/{org}/api-keys", None),
    ("POST", "/v1/orgs/{org}/api-keys", {"name": "k", "permissions": []}),
    ("DELETE", "/v1/orgs/{org}/api-keys/{key}", None),
    ("GET", "/v1/orgs/{org}/prompts", None),
    ("POST", "/v1/orgs/{org}/prompts", {"name": "new-one", "template": "t"}),
    ("GET", "/v1/orgs/{org}/prompts/by-name/{name}", None),
    ("GET", "/v1/orgs/{org}/prompts/by-name/{name}?label=production", None),
    ("GET", "/v1/orgs/{org}/prompts/by-name/{name}?label=production&as_of=2100-01-01T00:00:00Z", None),
    ("GET", "/v1/orgs/{org}/prompts/{prompt}", None),
    ("GET", "/v1/orgs/{org}/prompts/{prompt}?as_of=2100-01-01T00:00:00Z", None),
    ("POST", "/v1/orgs/{org}/prompts/{prompt}/archive", None),
    ("POST", "/v1/orgs/{org}/prompts/{prompt}/restore", None),
    ("POST", "/v1/orgs/{org}/prompts/{prompt}/render", {"variables": {}}),
    ("POST", "/v1/orgs/{org}/prompts/{prompt}/versions", {"base_version": 1, "template": "x"}),
    ("GET", "/v1/orgs/{org}/prompts/{prompt}/versions", None),
    ("GET", "/v1/orgs/{org}/prompts/{prompt}/versions/1", None),
    ("GET", "/v1/orgs/{org}/prompts/{prompt}/diff?from=1&to=1", None),
    ("PUT", "/v1/orgs/{org}/prompts/{prompt}/labels/staging", {"version": 1}),
    ("PUT", "/v1/orgs/{org}/prompts/{prompt}/labels/production", {"version": 1}),
    ("DELETE", "/v1/orgs/{org}/prompts/{prompt}/labels/production", None),
    ("GET", "/v1/orgs/{org}/prompts/{prompt}/labels/history", None),
    ("GET", "/v1/orgs/{org}/audit-events", None),
    ("POST", "/v1/orgs/{org}/prompts/search", {"query": "foreign secret prompt template"}),
    ("POST", "/v1/orgs/{org}/prompts/search", {"query": "foreign", "mode": "keyword", "include_archived": True}),
    ("GET", "/v1/orgs/{org}/prompts/{prompt}/similar", None),
]


@dataclass
class World:
    api: Api
    ours: str
    theirs: str
    callers: dict[str, User | Key]
    foreign_ids: dict[str, str]
    secrets: list[str]
    newcomer: User
    foreign_owner: User


@pytest.fixture(scope="module")
def world(module_api) -> World:
    api = module_api
    owner = api.user("owner")
    ours = api.org(owner, "Our Org")
    callers: dict[str, User | Key] = {"owner": owner}
    for role in ROLES[1:]:
        callers[role] = api.user(role)
        api.add(owner, ours, callers[role], role)
    callers["api_key"] = api.key(owner, ours, ALL_PERMISSIONS, name="all-permissions")
    api.prompt(owner, ours, "our-prompt", "ours {{x}}")

    foreign_owner = api.user("foreign-owner")
    theirs = api.org(foreign_owner, "Foreign Secret Org")
    foreign_member = api.user("foreign-member")
    api.add(foreign_owner, theirs, foreign_member, "developer")
    pid = api.prompt(foreign_owner, theirs, "foreign-secret-prompt", "FOREIGN TEMPLATE TEXT {{x}}",
                     tags=["foreigntag"])
    assert api.label(foreign_owner, theirs, pid, "production", 1).status_code == 200
    key = api.key(foreign_owner, theirs, ["prompts:read"], name="foreign-key-name")
    newcomer = api.user("newcomer")
    api.container.wait_for(api.position, 10)
    ids = {"org": theirs, "prompt": pid, "key": key.id, "user": foreign_member.user_id,
           "name": "foreign-secret-prompt"}
    secrets = [theirs, pid, key.id, foreign_member.user_id, foreign_owner.user_id, "Foreign Secret Org",
               "foreign-secret-prompt", "FOREIGN TEMPLATE TEXT", "foreigntag", "foreign-key-name", key.raw,
               foreign_member.email, foreign_owner.email]
    return World(api, ours, theirs, callers, ids, secrets, newcomer, foreign_owner)


def _fill(template, values: dict[str, str]):
    if isinstance(template, str):
        return template.format(**values)
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    return template


def _call(world: World, who: str, method: str, path: str, body, values: dict[str, str]):
    values = {**values, "newcomer": world.newcomer.email}
    return world.api.request(method, _fill(path, values), json=_fill(body, values),
                             headers=world.callers[who].h)


def _no_foreign_data(world: World, response) -> None:
    text = response.text
    leaked = [s for s in world.secrets if s in text]
    assert not leaked, (response.request.method, str(response.request.url), leaked, text[:500])


@pytest.mark.parametrize("who", [*ROLES, "api_key"])
@pytest.mark.parametrize("method,path,body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_foreign_org_urls_are_404(world, who, method, path, body):
    response = _call(world, who, method, path, body, world.foreign_ids)
    assert_error(response, 404)
    _no_foreign_data(world, response)


@pytest.mark.parametrize("who", [*ROLES, "api_key"])
@pytest.mark.parametrize("method,path,body", [r for r in ROUTES if any(
    f"{{{p}}}" in r[1] for p in ("prompt", "key", "user", "name"))], ids=lambda v: str(v)[:60])
def test_foreign_ids_in_our_org_look_absent(world, who, method, path, body):
    ours = {"org": world.ours}
    foreign = _call(world, who, method, path, body, {**world.foreign_ids, **ours})
    nowhere = _call(world, who, method, path, body, {
        **ours, "prompt": str(uuid.uuid4()), "key": str(uuid.uuid4()), "user": str(uuid.uuid4()),
        "name": "no-such-prompt-anywhere"})
    foreign_error, nowhere_error = assert_error(foreign), assert_error(nowhere)
    assert (foreign.status_code, foreign_error["error"]["code"]) == (nowhere.status_code, nowhere_error["error"]["code"])
    assert foreign.status_code in (403, 404)
    if who in ("owner", "api_key"):  # holds every permission: only "not found" is left
        assert foreign.status_code == 404
    _no_foreign_data(world, foreign)


@pytest.mark.parametrize("who", [*ROLES, "api_key"])
def test_search_in_our_org_never_finds_foreign_prompts(world, who):
    for query in ("foreign secret prompt", "FOREIGN TEMPLATE TEXT", "foreigntag"):
        for mode in ("keyword", "hybrid"):
            r = world.api.search(world.ours, world.callers[who],
                                 {"query": query, "mode": mode, "include_archived": True})
            assert r.status_code == 200, r.text
            assert world.foreign_ids["prompt"] not in {i["prompt_id"] for i in r.json()["items"]}
            _no_foreign_data(world, r)


def test_the_world_is_real(world):
    """Guard against a vacuous matrix: the foreign things exist and their owner can see them."""
    api = world.api
    assert api.get(f"/v1/orgs/{world.ours}/prompts/by-name/our-prompt", headers=world.callers["viewer"].h,
                   params={"min_position": api.position}).status_code == 200
    assert len(world.foreign_ids["prompt"]) == 36
    r = api.search(world.theirs, world.foreign_owner, {"query": "foreign secret", "mode": "keyword"})
    assert [i["prompt_id"] for i in r.json()["items"]] == [world.foreign_ids["prompt"]]
