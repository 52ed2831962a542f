"""Concurrent writers and concurrent projection runners (real Postgres; SQLite too where meaningful)."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from domain.errors import Conflict
from projections import tracking
from projections.catchup import catch_up
from projections.catalogue import prompt_versions
from tests.support.setup import owner_with_prompt

THREADS = 24


def _setup(app):
    return owner_with_prompt(app, name="contended", template="v1 {{x}}")


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_concurrent_revisions_one_winner_per_version(container):
    app = container.app
    owner, org, prompt_id = _setup(app)
    barrier = threading.Barrier(THREADS)
    outcomes: list[tuple[str, int]] = []
    lock = threading.Lock()

    def revise_from(base: int, tag: str) -> None:
        barrier.wait()
        try:
            result = app.revise_prompt(owner, org, prompt_id, base_version=base, request_id=tag,
                                       template=f"{tag} {{{{x}}}}")
            outcome = ("won", result.version)
        except Conflict as exc:
            assert exc.code == "PROMPT_VERSION_CONFLICT"
            assert exc.details["current_version"] > base
            outcome = ("conflict", base)
        with lock:
            outcomes.append(outcome)

    rounds = 5
    for r in range(rounds):
        base = r + 1
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda i: revise_from(base, f"round{r}-t{i}"), range(THREADS)))
        barrier.reset()
        won = [v for kind, v in outcomes if kind == "won"]
        assert won.count(base + 1) == 1, f"round {r}: exactly one winner for version {base + 1}"

    won = sorted(v for kind, v in outcomes if kind == "won")
    assert won == list(range(2, rounds + 2))
    assert sum(1 for kind, _ in outcomes if kind == "conflict") == rounds * (THREADS - 1)
    prompt = app.read_prompt(owner, org, prompt_id)
    assert [v["version"] for v in prompt.versions] == list(range(1, rounds + 2))

    container.supervisor.catch_up()
    with container.engine.connect() as conn:
        versions = [r[0] for r in conn.execute(select(prompt_versions.c.version).order_by(prompt_versions.c.version))]
    assert versions == list(range(1, rounds + 2))
    head = container.supervisor.source.head()
    assert all(p.position == head for p in tracking.read_all(container.engine).values())


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_concurrent_writers_while_projecting_miss_no_event(container):
    """Writers on many threads while two runners tail the log: every event is folded once."""
    app = container.app
    owner, org, _ = _setup(app)
    app.update_organisation(owner, org, "plan", plan="PRO")
    stop = threading.Event()

    def runner():
        while not stop.is_set():
            catch_up(container.projections["audit"], container.supervisor.source, batch_size=7)

    runners = [threading.Thread(target=runner) for _ in range(2)]
    for t in runners:
        t.start()

    def writer(i: int) -> None:
        for j in range(10):
            app.create_prompt(owner, org, name=f"p-{i}-{j}", template="t {{x}}", request_id=f"w{i}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    stop.set()
    for t in runners:
        t.join()
    container.supervisor.catch_up()
    events = container.supervisor.source.read(0, 1_000_000)
    from projections.audit import audit_log

    with container.engine.connect() as conn:
        positions = [r[0] for r in conn.execute(select(audit_log.c.position).order_by(audit_log.c.position))]
    expected = [e.position for e in events if type(e.event).__qualname__.split(".")[0] not in ("EmailIndex", "PromptNameIndex", "PromptQuota")]
    assert positions == expected


def test_two_runners_apply_each_batch_once(container):
    """Two runners racing on the same projection never both apply a batch (CAS on the position)."""
    app = container.app
    owner, org, prompt_id = _setup(app)
    for v in range(1, 40):
        app.revise_prompt(owner, org, prompt_id, base_version=v, request_id=f"r{v}", template=f"v{v} {{{{x}}}}")
    projection = container.projections["catalogue"]
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        return catch_up(projection, container.supervisor.source, batch_size=5)

    with ThreadPoolExecutor(2) as pool:
        applied = list(pool.map(lambda _: run(), range(2)))
    assert sum(applied) == container.supervisor.source.head()  # every event applied exactly once in total
    with container.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(prompt_versions)).scalar() == 40
