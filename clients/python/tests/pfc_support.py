"""Test support: a REAL `promptforge serve` (the server's own CLI, SQLite in a temp dir), its first user,
organisations and API keys set up over HTTP, and a TCP proxy that can cut connections.

The server executable: $PROMPTFORGE_SERVER_BIN, else the repository's `.venv/bin/promptforge`, else
`promptforge` on PATH. Without one the server tests are skipped (failed under
PROMPTFORGE_REQUIRE_SERVERS=1, as the server's suite does)."""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PASSWORD = "correct horse battery staple"
_names = itertools.count()

ALL_KEY_PERMISSIONS = ["prompts:read", "prompts:write", "prompts:promote", "audit:read"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_bin() -> str | None:
    explicit = os.environ.get("PROMPTFORGE_SERVER_BIN")
    if explicit:
        return explicit
    local = REPO / ".venv" / "bin" / "promptforge"
    if local.exists():
        return str(local)
    return shutil.which("promptforge")


class Server:
    """One `promptforge serve` process on a free port, with its data in `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None, **env: str):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log = data_dir / "server.log"

    def start(self, timeout: float = 60.0) -> "Server":
        binary = server_bin()
        if binary is None:
            raise RuntimeError("no promptforge server executable")
        env = {**os.environ,
               "PROMPTFORGE_DATA_DIR": str(self.data_dir),
               "PROMPTFORGE_EVENT_STORE_URL": f"sqlite:///{self.data_dir}/events.db",
               "PROMPTFORGE_READ_MODEL_URL": f"sqlite:///{self.data_dir}/readmodels.db",
               "PROMPTFORGE_VECTORS_ENABLED": "false",
               "PROMPTFORGE_ENV": "test",
               "PROMPTFORGE_RATE_LIMIT_PER_MINUTE": "1000000",
               "PROMPTFORGE_LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE": "1000",
               "PROMPTFORGE_LOGIN_ATTEMPTS_PER_MINUTE": "100",
               "PROMPTFORGE_ACCESS_TOKEN_TTL_SECONDS": "14400",
               "PROMPTFORGE_LOG_LEVEL": "WARNING",
               **self.env}
        for key in ("PROMPTFORGE_REDIS_URL", "PROMPTFORGE_QDRANT_URL"):
            env.pop(key, None)
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(self.data_dir))
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"promptforge serve exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"promptforge serve did not answer /healthz within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


def require_server() -> None:
    if server_bin() is None:
        message = "no promptforge server executable (set PROMPTFORGE_SERVER_BIN or create the repo's .venv)"
        if os.environ.get("PROMPTFORGE_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Org:
    id: str
    #: a key with prompts:read only (what an application holds)
    read_key: str
    #: a key with read, write, promote and audit:read
    key: str


class Admin:
    """The session's one user (logged in once), setting things up over HTTP."""

    def __init__(self, url: str):
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30.0)
        email = f"owner-{os.getpid()}-{next(_names)}@example.com"
        r = self.http.post("/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "Owner"})
        assert r.status_code == 201, r.text
        r = self.http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.email = email
        self.token = r.json()["access_token"]
        self.user_id = r.json()["user_id"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self._marker_org: str | None = None
        #: the highest log position of this admin's writes (clients observe it to read them)
        self.position = 0

    def call(self, method: str, path: str, expect: int | tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        if r.headers.get("x-event-position", "").isdigit():
            self.position = max(self.position, int(r.headers["x-event-position"]))
        codes = (expect,) if isinstance(expect, int) else expect
        assert r.status_code in codes, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def org(self, *, protected: bool = False, name: str = "Acme") -> Org:
        org_id = self.call("POST", "/v1/orgs", json={"name": f"{name} {next(_names)}"})["id"]
        patch: dict[str, Any] = {"plan": "PRO"}
        if not protected:
            patch["protected_labels"] = []
        self.call("PATCH", f"/v1/orgs/{org_id}", json=patch)
        read = self.call("POST", f"/v1/orgs/{org_id}/api-keys", json={"name": "app", "permissions": ["prompts:read"]})
        full = self.call("POST", f"/v1/orgs/{org_id}/api-keys", json={"name": "ci", "permissions": ALL_KEY_PERMISSIONS})
        return Org(org_id, read["key"], full["key"])

    def prompt(self, org: Org, name: str, template: str | None = None, **body: Any) -> dict[str, Any]:
        payload = {"name": name, **body}
        if template is not None:
            payload["template"] = template
        return self.call("POST", f"/v1/orgs/{org.id}/prompts", json=payload)

    def revise(self, org: Org, prompt_id: str, base: int, template: str | None = None, **body: Any) -> dict[str, Any]:
        payload = {"base_version": base, **body}
        if template is not None:
            payload["template"] = template
        return self.call("POST", f"/v1/orgs/{org.id}/prompts/{prompt_id}/versions", json=payload)

    def move(self, org: Org, prompt_id: str, label: str, version: int, **body: Any) -> dict[str, Any]:
        return self.call("PUT", f"/v1/orgs/{org.id}/prompts/{prompt_id}/labels/{label}",
                         json={"version": version, **body})

    def changes(self, org: Org, after: int = 0) -> list[dict[str, Any]]:
        """Every change of `org` after `after`, once the feed has caught up with every write made so
        far (the feed has no min_position: a marker written elsewhere shows when it has)."""
        self.settle()
        items, cursor = [], after
        while True:
            page = self.call("GET", f"/v1/orgs/{org.id}/changes", params={"after": cursor, "limit": 1000})
            items += page["items"]
            if not page["items"]:
                return items
            cursor = page["next"]

    def caught_up(self, org: Org) -> None:
        """Wait until the catalogue has applied every write made so far, by anyone (what a fresh
        client, e.g. a CLI run, reads next): a marker write gives the head of the log."""
        position = self._mark()
        self.call("GET", f"/v1/orgs/{org.id}/prompts", params={"min_position": position, "limit": 1})

    def _mark(self) -> int:
        if self._marker_org is None:
            self._marker_org = self.call("POST", "/v1/orgs", json={"name": f"marker {next(_names)}"})["id"]
        r = self.http.patch(f"/v1/orgs/{self._marker_org}", json={"name": f"marker {next(_names)}"})
        assert r.status_code == 200, r.text
        return int(r.headers["x-event-position"])

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the change feed has applied every event written before this call."""
        position = self._mark()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page = self.call("GET", f"/v1/orgs/{self._marker_org}/changes",
                             params={"after": position - 1, "limit": 1, "wait": 2})
            if page["items"] and page["items"][0]["position"] >= position:
                return
        raise AssertionError("the change feed did not catch up")


def unique(prefix: str = "p") -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


# -- a TCP proxy that can cut every connection (a dropped stream, a network outage) -----------------


class Proxy:
    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepting = True
        #: refuse connections whose first request is for the change stream (the rest still works)
        self.block_streams = False
        #: the request line and headers of the first request of every connection
        self.heads: list[str] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.accepting:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, first: bool = False) -> None:
        try:
            if first:
                data = src.recv(65536)
                head = data.decode("latin-1").split("\r\n\r\n", 1)[0]
                with self._lock:
                    self.heads.append(head)
                if not data or (self.block_streams and "/changes/stream" in head.split("\r\n", 1)[0]):
                    raise OSError("blocked")
                dst.sendall(data)
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)

    def cut(self) -> None:
        """Sever every open connection."""
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stream_heads(self) -> list[str]:
        with self._lock:
            return [h for h in self.heads if "/changes/stream" in h.split("\r\n", 1)[0]]

    def close(self) -> None:
        self._closed = True
        self.accepting = False
        self.cut()
        self.listener.close()





class Recorder(httpx.HTTPTransport):
    """A real transport that remembers each request and the status it got."""

    def __init__(self):
        super().__init__()
        self.log: list[tuple[httpx.Request, int]] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        with self.lock:
            self.log.append((request, response.status_code))
        return response

    def fetches(self) -> list[tuple[httpx.Request, int]]:
        with self.lock:
            return [(r, s) for r, s in self.log if "/by-name/" in r.url.path]


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


