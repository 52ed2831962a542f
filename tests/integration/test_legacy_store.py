"""An event store written by older code (tests/fixtures/legacy_v1, commit 8d86346) keeps working:
it loads, every projection rebuilds from it, and the v1 API answers over it as the old code did,
time travel included. Newer code may add fields to a response, never change or drop one."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from interfaces.bootstrap import build
from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.support.tables import dump

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_v1"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
#: Response parts that legitimately differ between the old code and today's.
VOLATILE_HEADERS = {"etag"}


def contains(expected, actual, path="$") -> list[str]:
    """Differences where `actual` does not carry what `expected` holds (extra keys are fine)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r:.80}"]
        out = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out.extend(contains(value, actual[key], f"{path}.{key}"))
        return out
    if isinstance(expected, list) and path.endswith(".permissions"):  # permissions added since may appear
        return [] if isinstance(actual, list) and set(expected) <= set(actual) else [f"{path}: {actual!r:.200}"]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r:.200}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in contains(e, a, f"{path}[{i}]")]
    return [] if expected == actual else [f"{path}: expected {expected!r:.80}, got {actual!r:.80}"]


@pytest.fixture
def legacy(tmp_path):
    shutil.copy(FIXTURE / "events.db", tmp_path / "events.db")
    settings = Settings(data_dir=tmp_path, event_store_url=f"sqlite:///{tmp_path}/events.db",
                        read_model_url=f"sqlite:///{tmp_path}/rm.db", inprocess_projections=False, env="test",
                        vectors_enabled=False)
    container = build(settings)
    container.supervisor.catch_up()
    yield container
    container.close()


def _login(client: TestClient, email: str) -> str:
    r = client.post("/v1/auth/login", json={"email": email, "password": EXPECTED["password"]})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _compare(client: TestClient, reads: dict, token: str) -> list[str]:
    problems = []
    for url, want in reads.items():
        r = client.get(url, headers={"Authorization": f"Bearer {token}"})
        if r.status_code != want["status"]:
            problems.append(f"{url}: status {r.status_code} != {want['status']}: {r.text[:200]}")
            continue
        problems.extend(f"{url}: {d}" for d in contains(want["body"], r.json()))
    return problems


def test_the_log_loads_completely(legacy):
    events = legacy.supervisor.source.read(0, 10_000)
    assert len(events) == EXPECTED["head"] == legacy.supervisor.source.head()
    assert {type(e.event).__qualname__ for e in events} >= set(EXPECTED["event_types"])
    org = legacy.app.repository.get(__import__("uuid").UUID(EXPECTED["org"]))
    assert org.name == "Legacy Org Renamed" and org.plan == "PRO"


def test_every_projection_rebuilds_to_the_live_state(legacy):
    live = {name: dump(legacy.engine, p) for name, p in legacy.projections.items()}
    assert live["catalogue"]["rm_prompts"], "the fixture's prompts are projected"
    for name in legacy.projections:
        legacy.supervisor.rebuild(name)
    rebuilt = {name: dump(legacy.engine, p) for name, p in legacy.projections.items()}
    assert rebuilt == live


def test_the_v1_api_answers_as_the_old_code_did(legacy):
    client = TestClient(create_app(legacy))
    token = _login(client, "ada@legacy.example")
    assert _compare(client, EXPECTED["reads"], token) == []


def test_time_travel_answers_as_before(legacy):
    client = TestClient(create_app(legacy))
    token = _login(client, "ada@legacy.example")
    assert len(EXPECTED["time_travel"]) > 50
    assert _compare(client, EXPECTED["time_travel"], token) == []


def test_the_old_api_keys_still_authenticate(legacy):
    client = TestClient(create_app(legacy))
    for name, raw in EXPECTED["keys"].items():
        want = EXPECTED["key_reads"][name]
        r = client.get(f"/v1/orgs/{EXPECTED['org']}/prompts/by-name/support-reply",
                       headers={"Authorization": f"Bearer {raw}"})
        assert r.status_code == want["status"], (name, r.text)
        assert contains(want["body"], r.json()) == []


def test_read_models_of_an_older_version_are_rebuilt_at_start(legacy, tmp_path):
    """A read-model database written before projections were versioned (no `projection_schemas` rows,
    a `versions` tracking row, stale catalogue rows) is brought to the current layout on start: the
    changed read models are dropped, recreated and replayed; the retired one is forgotten."""
    from sqlalchemy import delete, insert, update

    from projections import tracking
    from projections.catalogue import prompts
    from projections.db import write

    live = dump(legacy.engine, legacy.catalogue)
    with write(legacy.engine) as conn:
        conn.execute(delete(tracking.schemas))
        conn.execute(insert(tracking.tracking).values(name="versions", position=EXPECTED["head"]))
        conn.execute(update(prompts).values(template="stale"))
    settings = legacy.settings
    legacy.close()
    upgraded = build(settings)
    try:
        positions = tracking.read_all(upgraded.engine)
        assert "versions" not in positions and positions["catalogue"].position == 0
        assert positions["audit"].position == EXPECTED["head"]  # unchanged read models are kept as they are
        upgraded.supervisor.catch_up()
        assert dump(upgraded.engine, upgraded.catalogue) == live
    finally:
        upgraded.close()
