"""Two real `promptforge serve` processes on one Postgres database (adr/0020): each caches the
authentication and authorisation state it reads; a revocation, removal, demotion or logout made
through process A applies to the very next request on process B, whose caches were warm."""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PostgresSchema, postgres_url
from tests.e2e.support import PASSWORD

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[2]
WARM = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """`promptforge serve` on a free port, as deployed (its own process, its own caches)."""

    def __init__(self, schema: PostgresSchema, data_dir: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTFORGE_")}
        env.update({
            "PROMPTFORGE_ENV": "test", "PROMPTFORGE_DATA_DIR": str(data_dir),
            "PROMPTFORGE_EVENT_STORE_URL": schema.event_store_url,
            "PROMPTFORGE_READ_MODEL_URL": schema.read_model_url,
            "PROMPTFORGE_DB_POOL_SIZE": "4", "PROMPTFORGE_VECTORS_ENABLED": "false",
            "PROMPTFORGE_RATE_LIMIT_PER_MINUTE": "1000000", "PROMPTFORGE_LOG_LEVEL": "WARNING",
        })
        binary = REPO / ".venv" / "bin" / "promptforge"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(binary), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                         env=env, cwd=str(data_dir), stdout=log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.url, timeout=30.0)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"promptforge serve exited:\n{self.log.read_text()[-3000:]}")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"promptforge serve not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def two():
    with tempfile.TemporaryDirectory(prefix="pf-two-") as tmp, PostgresSchema(postgres_url()) as schema:
        dirs = [Path(tmp) / "a", Path(tmp) / "b"]
        for d in dirs:
            d.mkdir()
        servers: list[Serve] = []
        try:
            for d in dirs:  # one after the other: A creates the schema, B starts on it
                servers.append(Serve(schema, d))
                servers[-1].wait_ready()
            yield servers[0], servers[1]
        finally:
            for server in servers:
                server.stop()


class World:
    """An organisation set up through process A, with the credentials the tests revoke."""

    def __init__(self, a: Serve):
        self.a = a
        self.position = 0
        self.owner = self.user("owner")
        self.member = self.user("member")
        self.admin = self.user("admin")
        self.leaver = self.user("leaver")
        self.org = self.call("POST", "/v1/orgs", self.owner, json={"name": "Two"})["id"]
        self.call("PATCH", f"/v1/orgs/{self.org}", self.owner, json={"protected_labels": []})
        pid = self.call("POST", f"/v1/orgs/{self.org}/prompts", self.owner,
                        json={"name": "greet", "template": "Hello {{name}}"})["id"]
        self.call("PUT", f"/v1/orgs/{self.org}/prompts/{pid}/labels/production", self.owner, json={"version": 1})
        for user, role in ((self.member, "viewer"), (self.admin, "admin"), (self.leaver, "viewer")):
            self.call("POST", f"/v1/orgs/{self.org}/members", self.owner, json={"user_id": user["id"], "role": role})
        self.key = self.call("POST", f"/v1/orgs/{self.org}/api-keys", self.owner,
                             json={"name": "app", "permissions": ["prompts:read"]})
        self.admin_key = self.call("POST", f"/v1/orgs/{self.org}/api-keys", self.admin,
                                   json={"name": "ops", "permissions": ["prompts:read", "audit:read"]})

    def user(self, label: str) -> dict:
        email = f"{label}-{os.getpid()}-{time.monotonic_ns()}@example.com"
        r = self.a.http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = self.a.http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"id": r.json()["user_id"], "token": r.json()["access_token"]}

    def call(self, method: str, path: str, who: dict, **kw) -> dict:
        r = self.a.http.request(method, path, headers=h(who), **kw)
        assert r.status_code in (200, 201), r.text
        self.position = max(self.position, int(r.headers.get("x-event-position") or 0))
        return r.json()

    @property
    def fetch(self) -> str:
        return f"/v1/orgs/{self.org}/prompts/by-name/greet"


def h(who: dict) -> dict:
    return {"Authorization": f"Bearer {who.get('token') or who['key']}"}


def warm(world: World, server: Serve, path: str, who: dict) -> None:
    params = {"min_position": world.position, **({"label": "production"} if "/by-name/" in path else {})}
    for _ in range(WARM):
        r = server.http.get(path, headers=h(who), params=params)
        assert r.status_code == 200, r.text


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_a_key_revoked_through_a_is_refused_by_b_at_once(two):
    a, b = two
    world = World(a)
    for server in (a, b):
        warm(world, server, world.fetch, world.key)
    world.call("DELETE", f"/v1/orgs/{world.org}/api-keys/{world.key['id']}", world.owner)
    r = b.http.get(world.fetch, headers=h(world.key), params={"label": "production"})
    assert (r.status_code, error_code(r)) == (401, "API_KEY_REVOKED")


def test_a_member_removed_through_a_loses_access_on_b_at_once(two):
    a, b = two
    world = World(a)
    for server in (a, b):
        warm(world, server, world.fetch, world.member)
    world.call("DELETE", f"/v1/orgs/{world.org}/members/{world.member['id']}", world.owner)
    r = b.http.get(world.fetch, headers=h(world.member), params={"label": "production"})
    assert (r.status_code, error_code(r)) == (404, "ORG_NOT_FOUND")


def test_a_demoted_issuer_narrows_the_key_on_b_at_once(two):
    a, b = two
    world = World(a)
    audit = f"/v1/orgs/{world.org}/audit-events"
    for server in (a, b):
        warm(world, server, audit, world.admin_key)
        warm(world, server, world.fetch, world.admin_key)
    world.call("PATCH", f"/v1/orgs/{world.org}/members/{world.admin['id']}", world.owner, json={"role": "developer"})
    r = b.http.get(audit, headers=h(world.admin_key))
    assert (r.status_code, error_code(r)) == (403, "PERMISSION_DENIED")
    assert b.http.get(world.fetch, headers=h(world.admin_key), params={"label": "production"}).status_code == 200
    world.call("DELETE", f"/v1/orgs/{world.org}/members/{world.admin['id']}", world.owner)
    r = b.http.get(world.fetch, headers=h(world.admin_key), params={"label": "production"})
    assert (r.status_code, error_code(r)) == (401, "API_KEY_DISABLED")


def test_a_session_ended_through_a_is_refused_by_b_at_once(two):
    a, b = two
    world = World(a)
    for server in (a, b):
        warm(world, server, world.fetch, world.leaver)
    r = a.http.post("/v1/auth/logout", headers=h(world.leaver))
    assert r.status_code == 200, r.text
    r = b.http.get(world.fetch, headers=h(world.leaver), params={"label": "production"})
    assert (r.status_code, error_code(r)) == (401, "SESSION_REVOKED")


def test_a_label_moved_through_a_is_served_by_b_at_its_position(two):
    a, b = two
    world = World(a)
    for server in (a, b):
        warm(world, server, world.fetch, world.key)
    pid = b.http.get(world.fetch, headers=h(world.key)).json()["prompt_id"]
    world.call("POST", f"/v1/orgs/{world.org}/prompts/{pid}/versions", world.owner,
               json={"base_version": 1, "template": "Hi {{name}}"})
    world.call("PUT", f"/v1/orgs/{world.org}/prompts/{pid}/labels/production", world.owner, json={"version": 2})
    r = b.http.get(world.fetch, headers=h(world.key), params={"label": "production", "min_position": world.position})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
