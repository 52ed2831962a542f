"""Browser tests of the web console: Playwright for Python driving Debian's Chromium.

The server is the embedded default for real: uvicorn in a thread on a free port, SQLite event store
and read models in a temporary directory, projections in-process. Playwright's own browser download
does not work on these machines, so the browser is `/usr/bin/chromium` (`apt-get install chromium`;
`PROMPTFORGE_CHROMIUM` names another). Without it (or without the playwright package) the tests are
skipped with the reason, unless PROMPTFORGE_REQUIRE_SERVERS=1 (CI), which makes that a failure.
"""
from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from argon2 import PasswordHasher

from application import Principal
from interfaces.bootstrap import Container, build
from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.conftest import REQUIRE_SERVERS

CHROMIUM = os.environ.get("PROMPTFORGE_CHROMIUM", "/usr/bin/chromium")
HERE = Path(__file__).parent
AXE = HERE / "vendor" / "axe-core" / "axe.min.js"
SHOTS = HERE.parents[1] / "docs" / "console"
PASSWORD = "correct horse battery staple"


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVERS:
        pytest.fail(f"{reason} (PROMPTFORGE_REQUIRE_SERVERS=1: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2() -> Iterator[None]:
    """argon2id with the cheapest parameters: hashing cost is not what these tests are about."""
    import application.security as security

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        yield


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
    except Exception as exc:  # a broken install: say so instead of erroring in every test
        playwright.stop()
        _unavailable(f"Chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
    yield chromium
    chromium.close()
    playwright.stop()


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@dataclass
class Site:
    """The running console and the people in it (made through the application's commands)."""

    url: str
    container: Container
    people: dict[str, dict[str, Any]] = field(default_factory=dict)

    def person(self, name: str, email: str) -> dict[str, Any]:
        user_id, _ = self.container.app.register_user(email, PASSWORD, name, "browser-tests")
        self.people[name] = {"email": email, "id": user_id, "principal": Principal.user(user_id)}
        return self.people[name]

    def settle(self) -> None:
        self.container.supervisor.wait_for(self.container.app.head_position(), 5)

    def org_url(self, org_id, *parts: str) -> str:
        return "/".join([f"{self.url}/console/orgs/{org_id}", *(str(p) for p in parts)])


@pytest.fixture(scope="module")
def site(browser) -> Iterator[Site]:
    with tempfile.TemporaryDirectory(prefix="pf-console-") as tmp:
        settings = Settings(data_dir=Path(tmp), env="test", vectors_enabled=False, inprocess_projections=True,
                            event_store_url=f"sqlite:///{tmp}/events.db", read_model_url=f"sqlite:///{tmp}/rm.db",
                            rate_limit_per_minute=100_000, projection_poll_seconds=0.2)
        container = build(settings)
        container.start()
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="on", timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "the console server did not start"
        try:
            yield Site(f"http://127.0.0.1:{port}", container)
        finally:
            server.should_exit = True
            thread.join(10)
            container.close()


def new_context(browser, site: Site, **kw):
    context = browser.new_context(viewport=kw.pop("viewport", {"width": 1280, "height": 800}), base_url=site.url, **kw)
    context.set_default_timeout(10_000)
    return context


def sign_in(context, site: Site, name: str):
    """Signs in through the form (each sign-in counts against the login throttle: few per run)."""
    page = context.new_page()
    page.goto("/console/login")
    page.get_by_label("Email").fill(site.people[name]["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/**")
    assert "/login" not in page.url, page.content()[:2000]
    return page


def screenshot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
