"""Backends for the suite: every test taking `backend`/`container` runs on SQLite and Postgres.

Postgres tests talk to a real server (PROMPTFORGE_TEST_POSTGRES_URL, default the local one) and
get a fresh schema each. When the server is unreachable they are skipped with the reason, unless
PROMPTFORGE_REQUIRE_SERVERS=1 (CI), which turns the skip into a failure."""
from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from interfaces.bootstrap import Container, build
from interfaces.settings import Settings

#: Shared fixtures kept in their own modules.
pytest_plugins = ["tests.support.statements"]

PG_URL = os.environ.get("PROMPTFORGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/promptforge_test")
REDIS_URL = os.environ.get("PROMPTFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVERS = os.environ.get("PROMPTFORGE_REQUIRE_SERVERS", "") in ("1", "true", "yes")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One cache of the ONNX export (adr/0018) for every container and server process of the run, rather
# than an export per test's data_dir; exports are named by a hash of the model and the recipe.
os.environ.setdefault("PROMPTFORGE_MODEL_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"promptforge-test-models-{os.getuid()}"))


def _unavailable(what: str, reason: str) -> None:
    message = f"{what} unavailable: {reason}"
    if REQUIRE_SERVERS:
        pytest.fail(message + " (PROMPTFORGE_REQUIRE_SERVERS=1)")
    pytest.skip(message)


def _admin_url(url: str) -> str:
    base, _, _ = url.rpartition("/")
    return base + "/postgres"


_pg_checked: dict[str, str | None] = {}


def postgres_url() -> str:
    """The test database URL, creating the database once; skips/fails when unreachable."""
    if "error" not in _pg_checked:
        try:
            dbname = PG_URL.rsplit("/", 1)[1]
            with psycopg.connect(_admin_url(PG_URL), autocommit=True, connect_timeout=3) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (dbname,)).fetchone():
                    conn.execute(f'CREATE DATABASE "{dbname}"')
            _pg_checked["error"] = None
        except psycopg.Error as exc:
            _pg_checked["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    if _pg_checked["error"]:
        _unavailable("PostgreSQL", _pg_checked["error"])
    return PG_URL


class PostgresSchema:
    """A throw-away schema holding both the event store and the read models of one test."""

    def __init__(self, url: str):
        self.url = url
        self.name = "t_" + uuid.uuid4().hex[:12]

    def __enter__(self) -> "PostgresSchema":
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        return self

    def __exit__(self, *exc) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')

    @property
    def event_store_url(self) -> str:
        return f"{self.url}?schema={self.name}"

    @property
    def read_model_url(self) -> str:
        return self.url.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{self.name}"


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def make_settings(backend, tmp_path) -> Iterator:
    """Factory of Settings for the current backend; extra keyword args override fields."""
    schemas: list[PostgresSchema] = []

    def factory(**overrides) -> Settings:
        base = {"data_dir": tmp_path, "inprocess_projections": False, "env": "test", "vectors_enabled": False}
        if backend == "sqlite":
            base.update(event_store_url=f"sqlite:///{tmp_path}/events.db",
                        read_model_url=f"sqlite:///{tmp_path}/readmodels.db")
        else:
            if not schemas:
                schemas.append(PostgresSchema(postgres_url()).__enter__())
            schema = schemas[0]
            base.update(event_store_url=schema.event_store_url, read_model_url=schema.read_model_url, db_pool_size=4)
        base.update(overrides)
        return Settings(**base)

    yield factory
    for schema in schemas:
        schema.__exit__(None, None, None)


@pytest.fixture
def container(make_settings) -> Iterator[Container]:
    """A wired Container with projections driven explicitly by the test (`container.supervisor.catch_up()`)."""
    c = build(make_settings())
    yield c
    c.close()


@pytest.fixture
def two_apps(make_settings) -> Iterator:
    """Two applications on one store, as two processes would be: each with its own caches."""
    first, second = build(make_settings()), build(make_settings())
    try:
        yield first.app, second.app
    finally:
        first.close()
        second.close()


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", str(exc))
    return REDIS_URL
