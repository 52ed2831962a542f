"""End-to-end HTTP fixtures. Every test runs on SQLite and on Postgres.

- `api`: a fresh container (in-process projections, started) behind `create_app`, built with the
  suite's `make_settings` (so it follows the `backend` parametrisation); `api_factory(**settings)`
  for tests needing other settings.
- `world`: one module-scoped setup on each backend (two organisations, every role, keys), for the
  big matrices; tests using it must not change it.

Argon2id stays argon2id, with the cheapest parameters: hashing cost is not what these tests are
about and the production default (~110 ms) would dominate their run time.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from interfaces.bootstrap import build
from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.conftest import BACKENDS, PostgresSchema, postgres_url
from tests.e2e.support import Api


@pytest.fixture(scope="session", autouse=True)
def cheap_argon2() -> Iterator[None]:
    import application.security as security

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        yield


def _serve(settings: Settings, stack: ExitStack) -> Api:
    container = build(settings)
    container.start()
    stack.callback(container.close)
    app = create_app(container)
    client = TestClient(app, raise_server_exceptions=True)
    stack.enter_context(client)
    api = Api(client, container)
    api.app = app
    return api


@pytest.fixture
def api_factory(make_settings):
    with ExitStack() as stack:
        def factory(**overrides) -> Api:
            overrides.setdefault("inprocess_projections", True)
            return _serve(make_settings(**overrides), stack)

        yield factory


@pytest.fixture
def api(api_factory) -> Api:
    return api_factory()


@pytest.fixture(scope="module", params=BACKENDS)
def module_api(request) -> Iterator[Api]:
    """An Api shared by one module's tests on one backend (its own schema / files)."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pf-e2e-")))
        # Module-wide worlds send thousands of requests as a few users: limits are tested elsewhere.
        base = {"data_dir": tmp, "inprocess_projections": True, "env": "test", "vectors_enabled": False,
                "rate_limit_per_minute": 1_000_000}
        if request.param == "sqlite":
            base.update(event_store_url=f"sqlite:///{tmp}/events.db", read_model_url=f"sqlite:///{tmp}/rm.db")
        else:
            schema = stack.enter_context(PostgresSchema(postgres_url()))
            base.update(event_store_url=schema.event_store_url, read_model_url=schema.read_model_url,
                        db_pool_size=4)
        yield _serve(Settings(**base), stack)


