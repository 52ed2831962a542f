"""Hostile input on every route: malformed JSON, wrong types, huge bodies, unicode edge cases,
path injection, bad query strings and headers. Never a 500; refusals always in the error shape.

Routes are enumerated from the app itself, so a new route is fuzzed without editing this file."""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute

from interfaces.http.routers import ROUTERS
from tests.e2e.support import Api, User, assert_error

MALFORMED = [b'{"name": ', b"{", b"[1,2", b"\xff\xfe\x00", b'{"a": 1,}', b"{'single': 1}", b"[" * 50_000,
             b'{"a": ' * 5_000, b"\xef\xbb\xbf{}"]
WRONG_SHAPES = [b"null", b'"a string"', b"123", b"[]", b"true", b'{"a":NaN}', b"1e999", b'{"x": 1e999}']
WRONG_TYPES = {
    "name": 123, "template": ["x"], "version": "one", "base_version": -1, "expected_version": "x",
    "variables": "x", "permissions": "all", "role": 5, "email": 7, "password": None, "model_config": "s",
    "tags": {"a": 1}, "refresh_token": 1, "display_name": [], "plan": {}, "message": 1.5, "label": 3,
    "user_id": "not-a-uuid",
}
UNICODE = ["\\ud800", "\\udfff", "\\u0000", "a\\u0000b", "\u202e\u0644\u0627", "\u200b", "\u200d\u200d", "😀" * 50,
           "e\u0301" * 100, "\ufeff", "\uffff", "\U0010ffff", "ß" * 300, "\u0085line", "\u2028", "null", "../../x",
           "\\\\", "{{x}}", "'; DROP TABLE rm_prompts; --", "x" * 300_000]
PATH_INJECTIONS = ["..", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "%00", "%0d%0aSet-Cookie:%20x=1", "'%20OR%201=1--",
                   "%3Cscript%3E", quote("😀"), "a" * 5000, "%ff%fe", "%", "-1", "99999999999999999999999",
                   "00000000-0000-0000-0000-000000000000", "%E2%80%AE", "%5C%5C", "null", quote("\u200b")]
QUERY_NOISE = ["min_position=-1", "min_position=99999999999999999999999", "min_position=abc", "limit=0",
               "limit=1000000", "limit=x", "cursor=%00", "cursor=eyJwIjogLTF9", "cursor=WyJuYW1lIiwgMSwgMl0",
               "cursor=WyJ1cGRhdGVkX2F0IiwgInh4eCIsICJ5Il0", "as_of=garbage", "as_of=0001-01-01T00:00:00%2B01:00",
               "as_of=9999-12-31T23:59:59-01:00", "from=a&to=b", "from=-1&to=99999999999", "label=%00",
               "label=" + "x" * 100, "version=0", "version=abc", "since=x", "until=1e9", "archived=maybe",
               "sort=" + "x" * 50, "include_inactive=maybe", "include_revoked=2", "target=" + "x" * 100,
               "name_prefix=%ff", "tag=%F0%9F%98%80"]
HEADER_NOISE = [{"X-Min-Position": "-5"}, {"X-Min-Position": "9" * 30}, {"If-Match": "W/\"x:y\""},
                {"If-Match": "*"}, {"If-None-Match": "," * 100}, {"Idempotency-Key": "k" * 300},
                {"Idempotency-Key": ""}, {"X-Request-ID": "a" * 1000}, {"Content-Type": "text/plain"},
                {"Content-Length": "abc"}, {"Content-Type": "application/json; charset=latin-1"}]


@dataclass
class Target:
    api: Api
    owner: User
    values: dict[str, str]
    routes: list[tuple[str, str, bool]]  # method, path, has a JSON body
    body_fields: dict[tuple[str, str], list[str]]  # the JSON fields each body model declares


@pytest.fixture(scope="module")
def target(module_api) -> Target:
    api = module_api
    owner = api.user("fuzz-owner")
    org = api.org(owner, "Fuzz Org")
    pid = api.prompt(owner, org, "fuzzed", "Hi {{x}}")
    key = api.key(owner, org, ["prompts:read"])
    api.container.supervisor.wait_for(api.position, 10)
    api.patch(f"/v1/orgs/{org}", json={"protected_labels": ["guarded"]}, headers=owner.h)
    review = api.post(f"/v1/orgs/{org}/review-requests", headers=owner.h, json={
        "prompt_id": pid, "label": "guarded", "version": 1, "expected_version": 0}).json()["id"]
    release = api.post(f"/v1/orgs/{org}/releases", headers=owner.h, json={
        "label": "canary", "moves": [{"prompt_id": pid, "version": 1, "expected_version": 0}]}).json()["release_id"]
    webhook = api.post(f"/v1/orgs/{org}/webhooks", headers=owner.h, json={
        "url": "https://hooks.example.invalid/fuzz", "events": ["*"]}).json()["id"]
    api.container.supervisor.wait_for(api.container.app.head_position(), 10)
    values = {"org_id": org, "prompt_id": pid, "key_id": key.id, "user_id": owner.user_id, "name": "fuzzed",
              "label": "staging", "number": "1", "review_id": review, "release_id": release, "webhook_id": webhook,
              "delivery_id": str(uuid.uuid4())}
    routes = []
    body_fields: dict[tuple[str, str], list[str]] = {}
    for route in (r for router in ROUTERS for r in router.routes):
        if isinstance(route, APIRoute) and route.path.startswith("/v1/"):
            for method in sorted(route.methods):
                if route.path.startswith("/v1/auth/logout"):
                    continue  # would end the session the rest of the fuzzing uses
                routes.append((method, route.path.replace(":path}", "}"), route.body_field is not None))
                if route.body_field is not None:
                    model = route.body_field.field_info.annotation
                    body_fields[(method, route.path.replace(":path}", "}"))] = [
                        f.alias or n for n, f in model.model_fields.items()]
    documented = api.client.get("/openapi.json").json()["paths"]
    assert {p for _, p, _ in routes} | {"/v1/auth/logout", "/v1/auth/logout-all"} == set(documented)
    return Target(api, owner, values, routes, body_fields)


def _url(target: Target, path: str, override: dict[str, str] | None = None) -> str:
    values = {**target.values, **(override or {})}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def _check(response, expect_4xx: bool = True) -> None:
    assert response.status_code != 500, (response.request.method, str(response.request.url)[:200], response.text[:300])
    if expect_4xx:
        assert 400 <= response.status_code < 500, (response.status_code, str(response.request.url)[:200],
                                                   response.text[:300])
    if response.status_code >= 400:
        assert_error(response)


#: Routes answering an endless stream (SSE): read until the backlog is sent, then hang up.
STREAM_SUFFIX = "/changes/stream"


def _send(target: Target, method: str, url: str, content: bytes | None = None, headers: dict | None = None):
    hdrs = {**target.owner.h, **(headers or {})}
    if content is not None:
        hdrs.setdefault("Content-Type", "application/json")
    if method == "GET" and url.split("?", 1)[0].endswith(STREAM_SUFFIX):
        with target.api.client.stream(method, url, content=content, headers=hdrs) as response:
            if response.status_code == 200:
                text = ""
                for chunk in response.iter_text():
                    text += chunk
                    if ": caught-up" in text:
                        break
            else:
                response.read()
            return response
    return target.api.client.request(method, url, content=content, headers=hdrs)


def _body_routes(target: Target):
    return [(m, p) for m, p, has_body in target.routes if has_body]


def test_malformed_json_and_wrong_shapes(target):
    for method, path in _body_routes(target):
        url = _url(target, path)
        for payload in MALFORMED + WRONG_SHAPES:
            _check(_send(target, method, url, payload))


def test_wrong_types_field_by_field(target):
    for method, path in _body_routes(target):
        url = _url(target, path)
        for field, value in WRONG_TYPES.items():
            _check(_send(target, method, url, json.dumps({field: value}).encode()))
        _check(_send(target, method, url, json.dumps(WRONG_TYPES).encode()))
        _check(_send(target, method, url, json.dumps({"nested": [[[[[[[[[{"deep": 1}]]]]]]]]]}).encode()))


def test_huge_bodies_are_413_without_reading_them(target):
    limit = target.api.container.settings.max_body_bytes
    big = b'{"name": "' + b"x" * (limit + 100_000) + b'"}'
    for method, path in _body_routes(target):
        url = _url(target, path)
        r = _send(target, method, url, big)
        assert_error(r, 413, "PAYLOAD_TOO_LARGE")

        def chunks():  # no Content-Length: the limit is enforced while streaming
            yield b'{"name": "'
            for _ in range(limit // 32_768 + 8):
                yield b"y" * 32_768
            yield b'"}'

        r = target.api.client.request(method, url, content=chunks(),
                                      headers={**target.owner.h, "Content-Type": "application/json"})
        assert_error(r, 413, "PAYLOAD_TOO_LARGE")


def test_unicode_edge_cases_in_every_string_field(target):
    """Valid-but-odd text may be accepted (2xx); anything unstorable must be a clean 4xx. (Renaming the
    module's prompt to odd names would change what the other fuzz tests address: a rename's name goes
    through the same rule as a create's, fuzzed here.)"""
    for method, path in _body_routes(target):
        if path.endswith("/rename"):
            continue
        url = _url(target, path)
        fields = target.body_fields[(method, path)]
        for text in UNICODE:
            encoded = json.dumps(text) if "\\" not in text else f'"{text}"'
            for field in fields:
                raw = f'{{"{field}": {encoded}}}'.encode("utf-8", "surrogatepass")
                _check(_send(target, method, url, raw), expect_4xx=False)
            body = {"name": "u", "template": "t {{x}}", "tags": ["ok"], "variables": ["x"],
                    "model_config": {"k": "REPLACE"}}
            raw = json.dumps(body).replace('"REPLACE"', encoded).encode("utf-8", "surrogatepass")
            _check(_send(target, method, url, raw), expect_4xx=False)
    for text in ("\\ud800", "\\u0000"):  # these can never be stored
        raw = f'{{"name": "n{text}", "template": "t", "model_config": {{"k": "{text}"}}}}'.encode()
        _check(_send(target, "POST", _url(target, "/v1/orgs/{org_id}/prompts"), raw))


def test_path_injection_in_every_path_parameter(target):
    for method, path, has_body in target.routes:
        params = re.findall(r"\{(\w+)\}", path)
        body = b"{}" if has_body else None
        for param in params:
            for bad in PATH_INJECTIONS:
                url = _url(target, path, {param: bad})
                r = _send(target, method, url, body)
                # the client resolves dot segments itself: then a legitimate route may answer 2xx; and
                # any label name is a fine question for the org-wide label snapshot (empty answer)
                _check(r, expect_4xx=r.request.url.raw_path.decode() == url and not (
                    method == "GET" and param == "label"))
                assert "Fuzz Org" not in r.text or param != "org_id"


def test_query_and_header_noise_on_every_route(target):
    for method, path, has_body in target.routes:
        url = _url(target, path)
        body = b"{}" if has_body else None
        for query in QUERY_NOISE:
            _check(_send(target, method, f"{url}?{query}", body), expect_4xx=False)
        for headers in HEADER_NOISE:
            _check(_send(target, method, url, body, headers), expect_4xx=False)


def test_unknown_routes_and_methods_use_the_error_shape(target):
    api = target.api
    assert_error(api.client.get("/v1/nope"), 404, "NOT_FOUND")
    assert_error(api.client.get("/v1/orgs/"), 404, "NOT_FOUND")
    assert_error(api.client.get("/nope"), 404, "NOT_FOUND")
    root = api.client.get("/", follow_redirects=False)  # the web console's front door (adr/0017)
    assert root.status_code in (302, 303, 307) and root.headers["location"].startswith("/console")
    assert_error(api.client.request("TRACE", "/v1/me"), 405, "METHOD_NOT_ALLOWED")
    r = api.client.delete("/v1/auth/register")
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["allow"] == "POST"
    assert_error(api.client.get("/v1/me%00"), 400, "INVALID_REQUEST_TARGET")
