"""Fixtures: a REAL `promptforge serve` for the session (see pfc_support.Server), its first user
(logged in once), a fresh organisation with keys per test, and a TCP proxy that can cut connections."""
from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pfc_support import Admin, Org, Proxy, Server, require_server  # noqa: E402


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    require_server()
    with tempfile.TemporaryDirectory(prefix="pfc-server-") as tmp:
        srv = Server(Path(tmp)).start()
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture(scope="session")
def admin(server: Server) -> Iterator[Admin]:
    a = Admin(server.url)
    yield a
    a.http.close()


@pytest.fixture
def org(admin: Admin) -> Org:
    """A fresh organisation (PRO plan, no protected labels) with its two keys."""
    return admin.org()


@pytest.fixture
def proxy(server: Server) -> Iterator[Proxy]:
    p = Proxy(server.port)
    yield p
    p.close()
