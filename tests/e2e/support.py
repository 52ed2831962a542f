"""A thin test client for the HTTP API: users, orgs and prompts in a line each, and error-shape checks."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple"
_counter = itertools.count()


def assert_error(response, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "details"}, "request_id"}."""
    assert response.headers.get("content-type", "").startswith("application/json"), response.text[:300]
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"].isupper()
    assert isinstance(body["error"]["details"], dict)
    assert body["request_id"] and response.headers["x-request-id"] == body["request_id"]
    if status is not None:
        assert response.status_code == status, (response.status_code, body)
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


@dataclass
class User:
    email: str
    user_id: str
    access: str
    refresh: str
    session_id: str
    password: str = PASSWORD

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class Key:
    id: str
    raw: str
    permissions: list[str] = field(default_factory=list)

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.raw}"}


class Api:
    """Wraps a TestClient. Every command helper asserts success and remembers the last position,
    which `q()` passes as `min_position` so queries read the writes before them."""

    def __init__(self, client: TestClient, container):
        self.client = client
        self.container = container
        self.position = 0

    # -- raw verbs ------------------------------------------------------------------------
    def request(self, method: str, url: str, **kw):
        response = self.client.request(method, url, **kw)
        position = response.headers.get("x-event-position")
        if position:
            self.position = max(self.position, int(position))
        return response

    def get(self, url: str, **kw):
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw):
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw):
        return self.request("PUT", url, **kw)

    def patch(self, url: str, **kw):
        return self.request("PATCH", url, **kw)

    def delete(self, url: str, **kw):
        return self.request("DELETE", url, **kw)

    def q(self, url: str, who, **kw):
        """A query that reads its writes (min_position = the last position seen)."""
        params = dict(kw.pop("params", {}) or {})
        params.setdefault("min_position", self.position)
        return self.get(url, headers={**who.h, **kw.pop("headers", {})}, params=params, **kw)

    def search(self, org_id: str, who, body: dict[str, Any], **kw):
        """POST .../prompts/search, reading its writes like `q()`."""
        params = dict(kw.pop("params", {}) or {})
        params.setdefault("min_position", self.position)
        return self.post(f"/v1/orgs/{org_id}/prompts/search", headers={**who.h, **kw.pop("headers", {})},
                         params=params, json=body, **kw)

    # -- identity ----------------------------------------------------------------------------
    def register(self, email: str | None = None, password: str = PASSWORD, **extra) -> dict[str, Any]:
        email = email or f"user{next(_counter)}-{id(self)}@example.com"
        r = self.post("/v1/auth/register", json={"email": email, "password": password, **extra})
        assert r.status_code == 201, r.text
        return r.json()

    def login(self, email: str, password: str = PASSWORD, **kw):
        return self.post("/v1/auth/login", json={"email": email, "password": password}, **kw)

    def user(self, label: str = "user") -> User:
        email = f"{label}-{next(_counter)}-{id(self)}@example.com"
        self.register(email)
        r = self.login(email)
        assert r.status_code == 200, r.text
        t = r.json()
        return User(email, t["user_id"], t["access_token"], t["refresh_token"], t["session_id"])

    # -- organisations -------------------------------------------------------------------------
    def org(self, owner: User, name: str = "Acme", *, protected: bool = False) -> str:
        """A new organisation. Most tests move `production` directly, so it is unprotected unless
        `protected` (governance tests: `production` is protected by default, as in the product)."""
        r = self.post("/v1/orgs", json={"name": name}, headers=owner.h)
        assert r.status_code == 201, r.text
        org_id = r.json()["id"]
        if not protected:
            r = self.patch(f"/v1/orgs/{org_id}", json={"protected_labels": []}, headers=owner.h)
            assert r.status_code == 200, r.text
        return org_id

    def add(self, by: User, org_id: str, user: User, role: str) -> None:
        r = self.post(f"/v1/orgs/{org_id}/members", json={"email": user.email, "role": role}, headers=by.h)
        assert r.status_code == 201, r.text

    def prompt(self, who, org_id: str, name: str = "greet", template: str = "Hello {{name}}", **extra) -> str:
        r = self.post(f"/v1/orgs/{org_id}/prompts", json={"name": name, "template": template, **extra}, headers=who.h)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def revise(self, who, org_id: str, prompt_id: str, base: int, template: str, **extra) -> int:
        r = self.post(f"/v1/orgs/{org_id}/prompts/{prompt_id}/versions",
                      json={"base_version": base, "template": template, **extra}, headers=who.h)
        assert r.status_code == 201, r.text
        return r.json()["version"]

    def label(self, who, org_id: str, prompt_id: str, label: str, version: int, **extra):
        return self.put(f"/v1/orgs/{org_id}/prompts/{prompt_id}/labels/{label}", json={"version": version, **extra},
                        headers=who.h)

    def key(self, who, org_id: str, permissions: list[str], name: str = "key", **kw) -> Key:
        r = self.post(f"/v1/orgs/{org_id}/api-keys", json={"name": name, "permissions": permissions},
                      headers=who.h, **kw)
        assert r.status_code == 201, r.text
        return Key(r.json()["id"], r.json()["key"], permissions)
