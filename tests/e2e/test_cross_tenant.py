"""Cross-tenant matrix: every org-scoped route x another org's ids x every role (and an API key).

The matrix is derived from the app's own routes: every route whose path has `{org_id}`, every
method of it (HEAD and OPTIONS aside). Path parameters are filled by name (`ID_PARAMS`,
`CONSTANT_PARAMS`), bodies come from `BODIES` and query strings from `QUERIES`; a route with a
parameter, a body or a required query parameter the tables do not know fails a dedicated test
naming it, so a new route cannot slip past the matrix.

1. The foreign org's own URLs: always 404, whoever asks, and answered exactly as for an org that
   exists nowhere (same status and error code).
2. Our org's URLs naming the foreign org's prompt / key / member / prompt name: answered exactly as
   for an id that exists nowhere (404, or the caller's own 403 when the role lacks the permission),
   so nothing reveals that the foreign thing exists.
In both, no response body carries any of the foreign org's ids, names or content, no request of the
matrix appends an event, and at the end both organisations read exactly as they did before.

Also: our org's own reads (lists, audit, some filtering on the foreign things) and the caller-level
reads (`/v1/me`, `/v1/orgs`, ...) show no foreign data, and an `Idempotency-Key` reused in another
tenant is a new request there.

The bodies and query strings are valid: `test_matrix_requests_succeed_in_the_callers_own_org`
sends every case to a scratch org of the caller's own, where it succeeds, so in the matrix only
tenancy stops them. `test_the_matrix_is_the_apps_org_scoped_routes` checks the matrix (derived at
collection time from `register()`) is exactly the org-scoped routes of the app the fixtures serve.
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from interfaces.http.routers import register
from tests.e2e.support import Api, Key, User, assert_error

ROLES = ("owner", "admin", "developer", "reviewer", "viewer")
CALLERS = (*ROLES, "api_key")
ALL_PERMISSIONS = ["prompts:read", "prompts:write", "prompts:promote", "prompts:review", "members:manage", "api_keys:manage",
                   "audit:read", "org:manage"]
AS_OF = "2100-01-01T00:00:00Z"
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})

# -- the tables a new route may have to be taught about -------------------------------------------

#: Path parameters naming one organisation's things, filled by name from the world: our org's, the
#: foreign org's, or ids that exist nowhere. All but `org_id` are the subject of property 2.
#: Routes outside the matrix's shape (HTTP Basic, Langfuse's error shape): tested on their own.
COMPAT_PREFIX = "/api/public/"
ID_PARAMS = ("org_id", "prompt_id", "key_id", "user_id", "name", "review_id", "release_id", "webhook_id", "delivery_id")
FOREIGN_ID_PARAMS = tuple(p for p in ID_PARAMS if p != "org_id")
#: Path parameters that name nothing of a tenant's own: each value is one more case.
CONSTANT_PARAMS: dict[str, tuple[str, ...]] = {"number": ("1",), "label": ("staging", "production")}

#: A protected label in both orgs of the world (and the scratch orgs): review requests are about it.
GUARDED = "guarded"

#: (method, path template) -> minimal valid bodies (one case each). Valid means the request succeeds
#: on the caller's own org and its own ids (checked by the positive control below). A string that is
#: exactly "{param}" is replaced by that value of the case (ids, or "newcomer": a registered user who
#: is not a member yet).
BODIES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("PATCH", "/v1/orgs/{org_id}"): [{"name": "Renamed"}],
    ("POST", "/v1/orgs/{org_id}/members"): [{"email": "{newcomer}", "role": "viewer"}],
    ("PATCH", "/v1/orgs/{org_id}/members/{user_id}"): [{"role": "viewer"}],
    ("POST", "/v1/orgs/{org_id}/api-keys"): [{"name": "k", "permissions": ["prompts:read"]}],
    ("POST", "/v1/orgs/{org_id}/prompts"): [{"name": "new-one", "template": "t"}],
    ("POST", "/v1/orgs/{org_id}/prompts/{prompt_id}/render"): [{"variables": {"x": "1"}},
                                                                  {"variables": {"x": "1"}, "label": "production"}],
    ("POST", "/v1/orgs/{org_id}/prompts/{prompt_id}/versions"): [{"base_version": 1, "template": "x"}],
    ("POST", "/v1/orgs/{org_id}/prompts/{prompt_id}/rename"): [{"name": "moved/elsewhere"}],
    ("POST", "/v1/orgs/{org_id}/review-requests"): [
        {"prompt_id": "{prompt_id}", "label": GUARDED, "version": 1, "expected_version": 0, "reason": "r"}],
    ("POST", "/v1/orgs/{org_id}/review-requests/{review_id}/approve"): [{"comment": "ok"}],
    ("POST", "/v1/orgs/{org_id}/review-requests/{review_id}/reject"): [{"comment": "no"}],
    ("POST", "/v1/orgs/{org_id}/releases"): [
        {"label": "canary", "moves": [{"prompt_id": "{prompt_id}", "version": 1, "expected_version": 1}]}],
    ("POST", "/v1/orgs/{org_id}/releases/{release_id}/rollback"): [{"reason": "undo"}],
    ("PUT", "/v1/orgs/{org_id}/prompts/{prompt_id}/labels/{label}"): [{"version": 1}],
    ("POST", "/v1/orgs/{org_id}/webhooks"): [{"url": "https://hooks.example.invalid/new", "events": ["*"]}],
    ("PATCH", "/v1/orgs/{org_id}/webhooks/{webhook_id}"): [{"description": "changed"}],
    ("POST", "/v1/orgs/{org_id}/prompts/search"): [
        {"query": "foreign secret prompt template"},
        {"query": "foreign", "mode": "keyword", "include_archived": True},
        {"query": "foreigntag", "mode": "keyword", "tags": ["foreigntag"], "label": "production"},
    ],
}

#: (method, path template) -> query strings (one case each); the route's required query parameters
#: must be in every one. Values are filled like bodies. Default: one case, no query string.
QUERIES: dict[tuple[str, str], list[dict[str, str]]] = {
    ("GET", "/v1/orgs/{org_id}/prompts"): [{}, {"archived": "all"}, {"name_prefix": "foreign"}, {"tag": "foreigntag"},
                                           {"label": "production"}],
    ("GET", "/v1/orgs/{org_id}/prompts/by-name/{name:path}"): [{}, {"label": "production"}, {"version": "1"},
                                                               {"label": "production", "as_of": AS_OF},
                                                               {"resolve": "false"}],
    ("GET", "/v1/orgs/{org_id}/folders"): [{}, {"parent": "foreign"}],
    ("GET", "/v1/orgs/{org_id}/prompts/{prompt_id}"): [{}, {"as_of": AS_OF}],
    ("GET", "/v1/orgs/{org_id}/prompts/{prompt_id}/diff"): [{"from": "1", "to": "1"}],
    ("GET", "/v1/orgs/{org_id}/prompts/{prompt_id}/labels/history"): [{}, {"label": "production"}],
    ("GET", "/v1/orgs/{org_id}/audit-events"): [{}, {"target": "{prompt_id}"}, {"action": "prompt.label_moved"}],
}

#: (method, path template) -> requests (method, path template, body) the positive control sends
#: first, on the scratch org, so that the case can succeed there.
POSITIVE_CONTROL_SETUP: dict[tuple[str, str], list[tuple[str, str, dict[str, Any] | None]]] = {
    ("POST", "/v1/orgs/{org_id}/prompts/{prompt_id}/restore"): [
        ("POST", "/v1/orgs/{org_id}/prompts/{prompt_id}/archive", None)],
}

#: (method, path template) -> (status, code) answers besides 2xx that the positive control accepts.
POSITIVE_CONTROL_ALSO = {
    # The e2e world runs without a vector index (vectors_enabled=False): the route is reached and
    # authorised, then says so.
    ("GET", "/v1/orgs/{org_id}/prompts/{prompt_id}/similar"): {(503, "SEARCH_UNAVAILABLE")},
    # Reached and authorised; only the requester (the scratch org's member) may withdraw.
    ("POST", "/v1/orgs/{org_id}/review-requests/{review_id}/withdraw"): {(403, "NOT_THE_REQUESTER")},
}


def _governance(api: Api, owner: User, requester: User, org: str, pid: str) -> tuple[str, str, str, str]:
    """A protected label with an open review request (by `requester`) and a release (on `canary`);
    a webhook (to a name that never resolves) with a delivery of those changes."""
    r = api.post(f"/v1/orgs/{org}/webhooks", headers=owner.h, json={
        "url": f"https://foreign-hooks.example.invalid/{uuid.uuid4().hex}", "events": ["*"],
        "description": "foreign hook"})
    assert r.status_code == 201, r.text
    webhook = r.json()["id"]
    r = api.patch(f"/v1/orgs/{org}", json={"protected_labels": [GUARDED]}, headers=owner.h)
    assert r.status_code == 200, r.text
    r = api.post(f"/v1/orgs/{org}/review-requests", headers=requester.h, json={
        "prompt_id": pid, "label": GUARDED, "version": 1, "expected_version": 0, "reason": "foreign reason"})
    assert r.status_code == 201, r.text
    review = r.json()["id"]
    r = api.post(f"/v1/orgs/{org}/releases", headers=owner.h, json={
        "label": "canary", "moves": [{"prompt_id": pid, "version": 1, "expected_version": 0}]})
    assert r.status_code == 201, r.text
    release = r.json()["release_id"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        items = api.get(f"/v1/orgs/{org}/webhooks/{webhook}/deliveries", headers=owner.h).json()["items"]
        if items:
            return review, release, webhook, items[-1]["delivery_id"]
        time.sleep(0.05)
    raise AssertionError("the webhook got no delivery")


# -- deriving the matrix from the app's routes ----------------------------------------------------

@dataclass(frozen=True)
class OrgRoute:
    method: str
    path: str
    params: tuple[str, ...]
    takes_body: bool
    required_query: tuple[str, ...]
    idempotent: bool = False  # takes an `Idempotency-Key` header

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_PLACEHOLDER = re.compile(r"{(\w+)}")


def _api_routes(routes: Iterable[Any]) -> Iterator[tuple[str, set[str], APIRoute]]:
    """(full path, methods, route) of every APIRoute. Recent FastAPI keeps included routers as
    lazy `_IncludedRouter` entries in `app.routes`; `iter_route_contexts` flattens them with their
    effective (prefixed) paths. Older FastAPI copies the APIRoutes into `app.routes` directly."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI
        for route in routes:
            if isinstance(route, APIRoute):
                yield route.path, set(route.methods or ()), route
        return
    for context in iter_route_contexts(list(routes)):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield context.path or route.path, set(context.methods or route.methods or ()), route


def _required_query(dependant) -> set[str]:
    """Required query parameters of the endpoint and of its dependencies (by their URL name)."""
    found = {p.alias for p in dependant.query_params if p.field_info.is_required()}
    for sub in dependant.dependencies:
        found |= _required_query(sub)
    return found


def _headers(dependant) -> set[str]:
    found = {p.alias.lower() for p in dependant.header_params}
    for sub in dependant.dependencies:
        found |= _headers(sub)
    return found


def org_routes(routes: Iterable[Any]) -> list[OrgRoute]:
    """Every (method, path) whose path has `{org_id}`, in routing order (the first of duplicates wins)."""
    found: dict[tuple[str, str], OrgRoute] = {}
    for path, methods, route in _api_routes(routes):
        if "{org_id}" not in path:
            continue
        for method in sorted(methods - IGNORED_METHODS):
            found.setdefault((method, path), OrgRoute(
                method, path, tuple(_PATH_PARAM.findall(path)), route.body_field is not None,
                tuple(sorted(_required_query(route.dependant))), "idempotency-key" in _headers(route.dependant)))
    return list(found.values())


def all_api_paths(routes: Iterable[Any]) -> list[str]:
    return [path for path, _, _ in _api_routes(routes)]


def caller_reads(routes: Iterable[Any]) -> list[str]:
    """GET routes with no path parameter at all (the caller, their orgs and sessions, ops). The
    Langfuse-compatible routes (`/api/public/…`) authenticate with HTTP Basic and answer Langfuse's
    error shape: their tenancy cases are in tests/e2e/test_langfuse_compat.py."""
    return sorted({path for path, methods, _ in _api_routes(routes)
                   if "GET" in methods and "{" not in path and not path.startswith(COMPAT_PREFIX)})


@dataclass
class Case:
    route: OrgRoute
    constants: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any] | None

    @property
    def id(self) -> str:
        extra = [f"{k}={v}" for k, v in {**self.constants, **self.query}.items()]
        if self.body is not None:
            extra.append(str(self.body)[:50])
        return " ".join([str(self.route), *extra])

    @property
    def names_foreign_ids(self) -> bool:
        return any(p in FOREIGN_ID_PARAMS for p in self.route.params)

    def url(self, values: dict[str, str]) -> str:
        return _PATH_PARAM.sub(lambda m: {**values, **self.constants}[m.group(1)], self.route.path)


def unknown_params(route: OrgRoute) -> list[str]:
    return [p for p in route.params if p not in ID_PARAMS and p not in CONSTANT_PARAMS]


def cases_of(route: OrgRoute) -> list[Case]:
    """The route's cases: every constant-parameter value x every query x every body. None at all
    for a route with an unknown parameter (`test_every_path_parameter_is_known` names it)."""
    if unknown_params(route):
        return []
    combos: list[dict[str, str]] = [{}]
    for param in route.params:
        if param in CONSTANT_PARAMS:
            combos = [{**c, param: v} for c in combos for v in CONSTANT_PARAMS[param]]
    queries = QUERIES.get(route.key, [{}])
    bodies: list[dict[str, Any] | None] = list(BODIES.get(route.key, [None]))
    return [Case(route, c, dict(q), b) for c in combos for q in queries for b in bodies]


def matrix(routes: Iterable[Any]) -> list[Case]:
    return [case for route in org_routes(routes) for case in cases_of(route)]


def _registered_app() -> FastAPI:
    """The routes as `create_app` registers them, for parametrisation at collection time; the
    meta-tests check they are exactly the org-scoped routes of the app the fixtures serve."""
    app = FastAPI()
    register(app)
    return app


_ROUTES_AT_COLLECTION = _registered_app().routes
ROUTES = org_routes(_ROUTES_AT_COLLECTION)
CASES = matrix(_ROUTES_AT_COLLECTION)
FOREIGN_ID_CASES = [c for c in CASES if c.names_foreign_ids]
OUR_ORG_READS = [c for c in CASES if c.route.method == "GET" and not c.names_foreign_ids]
CALLER_READS = caller_reads(_ROUTES_AT_COLLECTION)
IDEMPOTENT_CASES = list({c.route.key: c for c in reversed(CASES) if c.route.idempotent}.values())[::-1]


def _case_params(cases: list[Case]):
    return [pytest.param(c, id=c.id) for c in cases]


# -- the world --------------------------------------------------------------------------------------

@dataclass
class World:
    api: Api
    ours: str
    theirs: str
    callers: dict[str, User | Key]
    foreign_ids: dict[str, str]
    secrets: list[str]
    newcomer: User
    owner: User
    foreign_owner: User
    before: dict[str, Any]


def _fill(template, values: dict[str, str]):
    """Strings that are exactly "{param}" become that value; anything else is left as it is."""
    if isinstance(template, str):
        match = _PLACEHOLDER.fullmatch(template)
        return values[match.group(1)] if match else template
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


def _snapshot(api: Api, who: User, org_id: str) -> dict[str, Any]:
    """Everything an owner can read of an org, to show that the matrix changed nothing."""
    def read(path: str, **params) -> Any:
        r = api.q(f"/v1/orgs/{org_id}{path}", who, params=params)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    snap: dict[str, Any] = {
        "org": read(""), "members": read("/members"), "keys": read("/api-keys"),
        "prompts": read("/prompts", archived="all", limit=200), "audit": read("/audit-events", limit=200),
        "webhooks": read("/webhooks"),
    }
    for item in snap["prompts"]["items"]:
        pid = item["id"]
        snap[pid] = [read(f"/prompts/{pid}"), read(f"/prompts/{pid}/versions"), read(f"/prompts/{pid}/labels/history")]
    return snap


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
    assert api.patch(f"/v1/orgs/{ours}", json={"protected_labels": [GUARDED]}, headers=owner.h).status_code == 200

    foreign_owner = api.user("foreign-owner")
    theirs = api.org(foreign_owner, "Foreign Secret Org")
    foreign_member = api.user("foreign-member")
    api.add(foreign_owner, theirs, foreign_member, "developer")
    pid = api.prompt(foreign_owner, theirs, "foreign-secret-prompt", "FOREIGN TEMPLATE TEXT {{x}}",
                     tags=["foreigntag"])
    for label in ("staging", "production"):
        assert api.label(foreign_owner, theirs, pid, label, 1).status_code == 200
    key = api.key(foreign_owner, theirs, ["prompts:read"], name="foreign-key-name")
    review, release, webhook, delivery = _governance(api, foreign_owner, foreign_owner, theirs, pid)
    newcomer = api.user("newcomer")
    ids = {"org_id": theirs, "prompt_id": pid, "key_id": key.id, "user_id": foreign_member.user_id,
           "name": "foreign-secret-prompt", "review_id": review, "release_id": release, "webhook_id": webhook,
           "delivery_id": delivery}
    hook_url = api.get(f"/v1/orgs/{theirs}/webhooks/{webhook}", headers=foreign_owner.h).json()["url"]
    listed = api.q(f"/v1/orgs/{theirs}/api-keys", foreign_owner).json()["items"]
    prefix = next(k["prefix"] for k in listed if k["id"] == key.id)
    assert len(prefix) > len("pfk_") + 4, prefix  # specific enough to be a secret
    secrets = [theirs, pid, key.id, prefix, review, release, webhook, delivery, hook_url, "foreign hook", "foreign reason", foreign_member.user_id, foreign_owner.user_id, "Foreign Secret Org",
               "foreign-secret-prompt", "FOREIGN TEMPLATE TEXT", "foreigntag", "foreign-key-name", key.raw,
               foreign_member.email, foreign_owner.email]
    before = {"ours": _snapshot(api, owner, ours), "theirs": _snapshot(api, foreign_owner, theirs)}
    return World(api, ours, theirs, callers, ids, secrets, newcomer, owner, foreign_owner, before)


def _nowhere() -> dict[str, str]:
    return {"org_id": str(uuid.uuid4()), "prompt_id": str(uuid.uuid4()), "key_id": str(uuid.uuid4()),
            "user_id": str(uuid.uuid4()), "name": "no-such-prompt-anywhere", "review_id": str(uuid.uuid4()),
            "release_id": str(uuid.uuid4()), "webhook_id": str(uuid.uuid4()), "delivery_id": str(uuid.uuid4())}


#: Routes answering an endless stream (SSE): read until the backlog is sent (`: caught-up`).
STREAMS = {("GET", "/v1/orgs/{org_id}/changes/stream")}


def _send(api: Api, headers: dict[str, str], case: Case, values: dict[str, str]):
    """Reads its writes: `X-Min-Position` (ignored by commands) makes queries wait for the world."""
    kwargs = dict(params=_fill(case.query, values) or None, json=_fill(case.body, values),
                  headers={"X-Min-Position": str(api.position), **headers})
    if case.route.key in STREAMS:
        with api.client.stream(case.route.method, case.url(values), **kwargs) as response:
            text = ""
            if response.status_code == 200:
                for chunk in response.iter_text():
                    text += chunk
                    if ": caught-up" in text:
                        break
            else:
                text = response.read().decode()
        return httpx.Response(response.status_code, headers=response.headers, content=text.encode(),
                              request=response.request)
    return api.request(case.route.method, case.url(values), **kwargs)


def _refused(world: World, who: str, case: Case, values: dict[str, str]):
    """Send a case that must be refused: it appends no event, whatever it answers."""
    values = {**values, "newcomer": world.newcomer.email}
    head = world.api.container.app.head_position()
    response = _send(world.api, world.callers[who].h, case, values)
    assert world.api.container.app.head_position() == head, (
        "a refused request appended events", case.id, who, response.status_code, response.text[:300])
    return response


def _no_foreign_data(world: World, response) -> None:
    text = response.text
    leaked = [s for s in world.secrets if s in text]
    assert not leaked, (response.request.method, str(response.request.url), leaked, text[:500])


def _not_a_route_miss(body: dict[str, Any], case: Case) -> None:
    """A 404 from the router itself ("no such route") would make the matrix vacuous."""
    assert body["error"]["message"] != "no such route", (case.id, body)
    assert body["error"]["code"] not in ("NOT_FOUND", "METHOD_NOT_ALLOWED"), (case.id, body)


# -- the matrix ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("case", _case_params(CASES))
def test_foreign_org_urls_are_404(world, who, case):
    foreign = _refused(world, who, case, world.foreign_ids)
    nowhere = _refused(world, who, case, {**world.foreign_ids, "org_id": str(uuid.uuid4())})
    foreign_error, nowhere_error = assert_error(foreign, 404), assert_error(nowhere, 404)
    _not_a_route_miss(foreign_error, case)
    assert foreign_error["error"]["code"] == nowhere_error["error"]["code"], (foreign_error, nowhere_error)
    _no_foreign_data(world, foreign)


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("case", _case_params(FOREIGN_ID_CASES))
def test_foreign_ids_in_our_org_look_absent(world, who, case):
    ours = {"org_id": world.ours}
    foreign = _refused(world, who, case, {**world.foreign_ids, **ours})
    nowhere = _refused(world, who, case, {**_nowhere(), **ours})
    foreign_error, nowhere_error = assert_error(foreign), assert_error(nowhere)
    answered = (foreign.status_code, foreign_error["error"]["code"])
    assert answered == (nowhere.status_code, nowhere_error["error"]["code"]), (foreign_error, nowhere_error)
    assert foreign.status_code in (403, 404), foreign_error
    _not_a_route_miss(foreign_error, case)
    if who in ("owner", "api_key"):  # holds every permission: only "not found" is left
        assert foreign.status_code == 404, foreign_error
    _no_foreign_data(world, foreign)


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("case", _case_params(OUR_ORG_READS))
def test_our_org_reads_show_no_foreign_data(world, who, case):
    """Our org's own reads (lists, audit, the org itself), some filtering on the foreign things."""
    values = {**world.foreign_ids, "org_id": world.ours}
    response = _send(world.api, world.callers[who].h, case, values)
    if response.status_code != 200:
        assert_error(response, 403)  # the role lacks the permission
        assert who not in ("owner", "api_key")
    _no_foreign_data(world, response)


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("path", CALLER_READS)
def test_caller_level_reads_show_no_foreign_data(world, who, path):
    """`/v1/me`, `/v1/orgs` and the like: nothing of an org the caller is not in."""
    response = world.api.get(path, headers=world.callers[who].h, params={"min_position": world.api.position})
    if response.status_code != 200:
        assert_error(response, 403)  # e.g. a route for users' access tokens only, asked with an API key
    _no_foreign_data(world, response)


@pytest.mark.parametrize("who", CALLERS)
def test_search_in_our_org_never_finds_foreign_prompts(world, who):
    for query in ("foreign secret prompt", "FOREIGN TEMPLATE TEXT", "foreigntag"):
        for mode in ("keyword", "hybrid"):
            r = world.api.search(world.ours, world.callers[who],
                                 {"query": query, "mode": mode, "include_archived": True})
            assert r.status_code == 200, r.text
            assert world.foreign_ids["prompt_id"] not in {i["prompt_id"] for i in r.json()["items"]}
            _no_foreign_data(world, r)


# -- the matrix is complete and its requests are real ----------------------------------------------

def test_the_matrix_is_the_apps_org_scoped_routes(module_api):
    """Derived from the app the fixtures serve: nothing org-scoped is missing, the matrix is not
    trivially small, and every route of it has cases."""
    served = org_routes(module_api.app.routes)
    assert len(served) >= 26, [str(r) for r in served]  # 26 on the day the matrix was derived
    missing = sorted(str(r) for r in served if r not in ROUTES)
    extra = sorted(str(r) for r in ROUTES if r not in served)
    assert not missing and not extra, {"served but not in the matrix": missing, "in the matrix, not served": extra}
    covered = {case.route.key for case in CASES}
    uncovered = [str(r) for r in served if r.key not in covered]
    assert not uncovered, f"org-scoped routes without cases (see test_every_path_parameter_is_known): {uncovered}"
    assert {(c.route.method, c.route.path) for c in FOREIGN_ID_CASES} >= {
        r.key for r in served if any(p in FOREIGN_ID_PARAMS for p in r.params)}
    assert [c.id for c in matrix(module_api.app.routes)] == [c.id for c in CASES]
    assert len(CASES) >= 40, len(CASES)
    assert caller_reads(module_api.app.routes) == CALLER_READS
    assert IDEMPOTENT_CASES, "no org-scoped route takes an Idempotency-Key any more?"
    # Nothing under /v1/orgs/<something> escapes by spelling the org parameter another way.
    escaped = [p for p in all_api_paths(module_api.app.routes)
               if p.startswith("/v1/orgs/") and not p.startswith("/v1/orgs/{org_id}")]
    assert not escaped, escaped


def test_every_path_parameter_is_known():
    unknown = {str(r): unknown_params(r) for r in ROUTES if unknown_params(r)}
    assert not unknown, (
        f"org-scoped routes with path parameters the cross-tenant matrix cannot fill: {unknown}; "
        "add them to ID_PARAMS (an id of one org's thing) or CONSTANT_PARAMS in tests/e2e/test_cross_tenant.py")


def test_every_route_with_a_body_has_one():
    missing = [str(r) for r in ROUTES if r.takes_body and r.key not in BODIES]
    assert not missing, (
        f"org-scoped routes taking a body without an entry in BODIES: {missing}; add a minimal valid body "
        "(one that succeeds on the caller's own org) to tests/e2e/test_cross_tenant.py")
    needless = [f"{m} {p}" for (m, p) in BODIES if any(r.key == (m, p) and not r.takes_body for r in ROUTES)]
    assert not needless, f"BODIES entries for routes that take no body: {needless}"


def test_every_required_query_parameter_is_given():
    missing = {str(r): [q for q in r.required_query if any(q not in query for query in QUERIES.get(r.key, [{}]))]
               for r in ROUTES}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"required query parameters missing from QUERIES: {missing}"


def test_the_tables_name_only_existing_routes():
    keys = {r.key for r in ROUTES}
    setups = [(m, p) for steps in POSITIVE_CONTROL_SETUP.values() for m, p, _ in steps]
    stale = [f"{m} {p}" for (m, p) in [*BODIES, *QUERIES, *POSITIVE_CONTROL_ALSO, *POSITIVE_CONTROL_SETUP, *setups]
             if (m, p) not in keys]
    assert not stale, f"entries for routes that no longer exist (renamed?): {stale}"


@pytest.fixture(scope="module")
def scratch_people(module_api) -> dict[str, User]:
    """Owners and a member for scratch orgs (few: logins are throttled per client address)."""
    api = module_api
    return {"owner": api.user("scratch-owner"), "other-owner": api.user("scratch-other-owner"),
            "member": api.user("scratch-member")}


def _scratch_org(api: Api, owner: User, member: User, case: Case, newcomer: str | None = None) -> dict[str, str]:
    """A fresh org of `owner` shaped like the foreign one, ready for `case`: the values to fill it with."""
    org = api.org(owner, "Scratch Org")
    api.add(owner, org, member, "reviewer")
    pid = api.prompt(owner, org, "scratch-prompt", "scratch {{x}}", tags=["foreigntag"])
    for label in ("staging", "production"):
        assert api.label(owner, org, pid, label, 1).status_code == 200
    key = api.key(owner, org, ["prompts:read"], name="scratch-key")
    review, release, webhook, delivery = _governance(api, owner, member, org, pid)  # the member requests: the owner may approve
    if newcomer is None:
        newcomer = f"scratch-newcomer-{uuid.uuid4().hex}@example.com"
        api.register(newcomer)  # registered, never logged in
    values = {"org_id": org, "prompt_id": pid, "key_id": key.id, "user_id": member.user_id,
              "name": "scratch-prompt", "newcomer": newcomer, "review_id": review, "release_id": release,
              "webhook_id": webhook, "delivery_id": delivery}
    for method, path, body in POSITIVE_CONTROL_SETUP.get(case.route.key, []):
        step = Case(OrgRoute(method, path, tuple(_PATH_PARAM.findall(path)), body is not None, ()), {}, {}, body)
        r = _send(api, owner.h, step, values)
        assert r.status_code < 300, (step.id, r.text)
    return values


@pytest.mark.parametrize("case", _case_params(CASES))
def test_matrix_requests_succeed_in_the_callers_own_org(module_api, scratch_people, case):
    """Positive control: each case, on a fresh org of the caller's own shaped like the foreign one,
    succeeds. So the paths route, the bodies and query strings are valid, and in the matrix only
    tenancy refuses them. (Touches neither org of the world.)"""
    api, owner = module_api, scratch_people["owner"]
    values = _scratch_org(api, owner, scratch_people["member"], case)
    response = _send(api, owner.h, case, values)
    if response.status_code >= 300:
        body = assert_error(response)
        assert (response.status_code, body["error"]["code"]) in POSITIVE_CONTROL_ALSO.get(case.route.key, set()), (
            case.id, response.status_code, body)


@pytest.mark.parametrize("case", _case_params(IDEMPOTENT_CASES))
def test_idempotency_keys_do_not_cross_tenants(module_api, scratch_people, case):
    """The same `Idempotency-Key` and body in another tenant is a new request there: never a
    replay of the first tenant's answer, nor a conflict with it."""
    api = module_api
    newcomer = f"scratch-newcomer-{uuid.uuid4().hex}@example.com"
    api.register(newcomer)
    first = _scratch_org(api, scratch_people["owner"], scratch_people["member"], case, newcomer)
    second = _scratch_org(api, scratch_people["other-owner"], scratch_people["member"], case, newcomer)
    key = {"Idempotency-Key": f"shared-{uuid.uuid4().hex}"}
    a = _send(api, {**scratch_people["owner"].h, **key}, case, first)
    assert a.status_code < 300, (case.id, a.text)
    b = _send(api, {**scratch_people["other-owner"].h, **key}, case, second)
    assert b.status_code < 300, (case.id, b.text)
    assert b.headers.get("idempotency-replayed", "false") == "false", (case.id, b.text)
    firsts = (first["org_id"], first["prompt_id"], first["key_id"], a.json().get("id"))
    leaked = [v for v in firsts if v and v in b.text]
    assert not leaked, (case.id, leaked, b.text)


# -- the world ------------------------------------------------------------------------------------------

def test_the_world_is_real(world):
    """Guard against a vacuous matrix: the foreign things exist and their owner can see them."""
    api = world.api
    assert api.get(f"/v1/orgs/{world.ours}/prompts/by-name/our-prompt", headers=world.callers["viewer"].h,
                   params={"min_position": api.position}).status_code == 200
    assert len(world.foreign_ids["prompt_id"]) == 36
    r = api.search(world.theirs, world.foreign_owner, {"query": "foreign secret", "mode": "keyword"})
    assert [i["prompt_id"] for i in r.json()["items"]] == [world.foreign_ids["prompt_id"]]
    theirs = world.before["theirs"]
    assert {m["user_id"] for m in theirs["members"]["items"]} == {world.foreign_owner.user_id,
                                                                   world.foreign_ids["user_id"]}
    assert [k["id"] for k in theirs["keys"]["items"]] == [world.foreign_ids["key_id"]]
    assert theirs[world.foreign_ids["prompt_id"]][0]["labels"] == {"staging": 1, "production": 1, "canary": 1,
                                                                    "latest": 1}


def test_the_world_is_unchanged(world):
    """Last: after every case of the matrix, both organisations read exactly as before."""
    api = world.api
    after = {"ours": _snapshot(api, world.owner, world.ours),
             "theirs": _snapshot(api, world.foreign_owner, world.theirs)}
    for org in ("ours", "theirs"):
        changed = sorted(k for k in {*world.before[org], *after[org]} if world.before[org].get(k) != after[org].get(k))
        assert not changed, (org, changed)
