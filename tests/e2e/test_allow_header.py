"""405 answers and OPTIONS list every method of the path in `Allow`, whatever route serves each method."""
from __future__ import annotations

import uuid

import pytest

from tests.e2e.support import assert_error

ORG = str(uuid.uuid4())
PROMPT = str(uuid.uuid4())
#: path -> every method its routes serve (paths served by two or more routes first)
PATHS = {
    "/v1/orgs": {"GET", "POST"},
    f"/v1/orgs/{ORG}": {"GET", "PATCH"},
    f"/v1/orgs/{ORG}/prompts": {"GET", "POST"},
    f"/v1/orgs/{ORG}/prompts/{PROMPT}/versions": {"GET", "POST"},
    f"/v1/orgs/{ORG}/prompts/{PROMPT}/labels/staging": {"PUT", "DELETE"},
    f"/v1/orgs/{ORG}/members": {"GET", "POST"},
    f"/v1/orgs/{ORG}/members/{uuid.uuid4()}": {"PATCH", "DELETE"},
    f"/v1/orgs/{ORG}/api-keys": {"GET", "POST"},
    "/v1/auth/register": {"POST"},
    "/v1/me": {"GET"},
}
EVERY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allow(response) -> set[str]:
    return {m.strip() for m in response.headers["allow"].split(",")}


@pytest.mark.parametrize("path,methods", PATHS.items(), ids=list(PATHS))
def test_every_405_lists_every_method_of_the_path(api, path, methods):
    for method in EVERY_METHOD:
        if method in methods:
            continue
        r = api.request(method, path, json={})
        assert_error(r, 405, "METHOD_NOT_ALLOWED")
        assert _allow(r) == methods, (method, path, r.headers["allow"])


@pytest.mark.parametrize("path,methods", PATHS.items(), ids=list(PATHS))
def test_options_answers_204_with_every_method(api, path, methods):
    r = api.client.options(path)
    assert r.status_code == 204 and r.content == b""
    assert _allow(r) == methods | {"OPTIONS"}


def test_405_and_options_need_no_credentials_and_leak_nothing_about_the_org(api):
    owner = api.user()
    org = api.org(owner)
    mine, unknown = api.client.options(f"/v1/orgs/{org}"), api.client.options(f"/v1/orgs/{uuid.uuid4()}")
    assert mine.headers["allow"] == unknown.headers["allow"]
    r = api.request("DELETE", f"/v1/orgs/{org}", headers=owner.h)
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert _allow(r) == {"GET", "PATCH"}


def test_options_on_an_unknown_path_is_404(api):
    assert_error(api.client.options("/v1/no-such-thing"), 404, "NOT_FOUND")


def test_cors_preflight_is_still_answered_by_cors(api_factory):
    api = api_factory(cors_origins=["https://app.example"])
    preflight = api.client.options(f"/v1/orgs/{ORG}/prompts", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    plain = api.client.options(f"/v1/orgs/{ORG}/prompts", headers={"Origin": "https://app.example"})
    assert plain.status_code == 204 and _allow(plain) == {"GET", "POST", "OPTIONS"}
