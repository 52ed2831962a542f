"""Read models answer from their own rows and advance independently (ARCHITECTURE §4, adr/0011):
the by-name fetch never depends on another projection, a failing projection stops no other, every
projection gets its fair share under sustained writes, a rebuild under concurrent catch-up
converges, and SQLite reads never wait for a writer. On both backends."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor
from functools import singledispatchmethod

import pytest
from sqlalchemy import insert

from application import Principal
from domain.prompt import Prompt
from projections import tracking
from projections.catchup import catch_up
from projections.db import is_sqlite, write
from projections.label_history import LabelHistory, label_moves
from projections.supervisor import ProjectionSupervisor
from tests.support.tables import dump


def _owner(app, email="iso@example.com"):
    user_id, _ = app.register_user(email, "correct horse battery", "I", "r")
    owner = Principal.user(user_id)
    org = app.create_organisation(owner, "Iso", "r").id
    app.update_organisation(owner, org, "r", protected_labels=[])  # these tests move `production` directly
    return owner, org


def test_by_name_fetch_is_answered_by_the_catalogue_alone(container):
    """It used to join the versions projection's table: while `versions` lagged `catalogue` (after
    every revision, and during `rebuild versions`) an existing prompt answered VERSION_NOT_FOUND."""
    app = container.app
    owner, org = _owner(app)
    pid = app.create_prompt(owner, org, name="hot", template="v1 {{x}}", request_id="r").id
    app.revise_prompt(owner, org, pid, base_version=1, request_id="r", template="v2 {{x}}")
    app.move_label(owner, org, pid, "production", 2, "r")
    container.supervisor.catch_up(["catalogue"])  # only the catalogue: every other read model lags
    lagging = {name: p.position for name, p in tracking.read_all(container.engine).items()}
    assert lagging["label_history"] == 0 and lagging["audit"] == 0
    for label, version in ((None, None), ("production", None), (None, 1)):
        row = container.catalogue.fetch(str(org), "hot", label=label, version=version)
        assert row is not None and row["template"] == f"v{row['resolved']} {{{{x}}}}", (label, version, row)
    assert container.catalogue.fetch(str(org), "HOT", label="production")["resolved"] == 2
    assert [v["version"] for v in container.catalogue.versions(str(org), str(pid))] == [1, 2]


class Broken(LabelHistory):
    """A read model whose fold fails on every label move."""

    @singledispatchmethod
    def row(self, event, env):
        return LabelHistory.row(self, event, env)

    @row.register
    def _(self, event: Prompt.LabelMoved, env):
        raise RuntimeError("disk full")


def test_a_failing_projection_stops_no_other_and_is_reported(container):
    """Workers summed catch-ups over a generator: the first exception stopped every later projection."""
    app = container.app
    owner, org = _owner(app)
    pid = app.create_prompt(owner, org, name="p", template="t", request_id="r").id
    app.move_label(owner, org, pid, "staging", 1, "r")
    supervisor = container.supervisor
    projections = dict(supervisor.sql)
    projections["label_history"] = Broken(container.engine)
    broken = ProjectionSupervisor(container.engine, supervisor.source, projections, batch_size=500)
    broken.catch_up()
    head = supervisor.source.head()
    status = {s.name: s for s in broken.status()}
    assert status["label_history"].position == 0 and "disk full" in status["label_history"].error
    assert all(s.position == head and s.error is None for n, s in status.items() if n != "label_history")
    # visible to every process: a fresh supervisor (another process) reads the failure from the DB
    assert "disk full" in {s.name: s for s in supervisor.status()}["label_history"].error
    # the metric says so too
    text = container.metrics.render().decode()
    assert 'promptforge_projection_failing{projection="label_history"} 1.0' in text
    assert 'promptforge_projection_failing{projection="catalogue"} 0.0' in text
    # once the fault is gone, catching up clears the failure without any extra bookkeeping
    supervisor.catch_up()
    assert all(s.error is None and s.position == head for s in supervisor.status())


class Recording(LabelHistory):
    """Records the order in which batches of each projection are applied (shared log)."""

    def __init__(self, engine, name, log):
        super().__init__(engine)
        self.name, self._log = name, log

    def fold(self, conn, batch):
        self._log.append(self.name)


def test_every_projection_gets_a_fair_share_under_sustained_writes(container):
    """Catch-up used to run each projection to the head before the next: under sustained writes the
    first rarely finished and the others fell ~12k events behind. Now one batch each, in turn."""
    app = container.app
    owner, org = _owner(app)
    app.update_organisation(owner, org, "r", plan="PRO")  # the writer must not stop at the FREE plan's 100 prompts
    for i in range(30):
        app.create_prompt(owner, org, name=f"seed-{i}", template="t", request_id="r")
    order: list[str] = []
    names = ["a", "b", "c"]
    for name in names:
        tracking.ensure(container.engine, name)
    fair = ProjectionSupervisor(container.engine, container.supervisor.source,
                                {n: Recording(container.engine, n, order) for n in names}, batch_size=5)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer():
        i = 0
        try:
            while not stop.is_set():
                app.create_prompt(owner, org, name=f"live-{i}", template="t", request_id="w")
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported below: the writes must go on throughout
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(3):
            fair.catch_up()
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(order) >= 3 * 20
    # In every window of len(names) consecutive batches, no projection appears twice while another is pending.
    for i in range(0, len(order) - len(names), len(names)):
        window = order[i:i + len(names)]
        assert sorted(window) == names or len(set(window)) == len(window), order[i:i + 12]
    fair.catch_up()
    head = container.supervisor.source.head()
    assert all(p.position == head for n, p in tracking.read_all(container.engine).items() if n in names)


def test_rebuild_under_concurrent_catch_up_converges(container):
    """`reset` deleted rows before locking the tracking row: a concurrent batch's rows survived the
    delete and the replay hit duplicate keys forever (Postgres; the README's restore procedure)."""
    app = container.app
    owner, org = _owner(app)
    ids = [app.create_prompt(owner, org, name=f"r{i}", template="t {{x}}", request_id="r").id for i in range(20)]
    supervisor = container.supervisor
    catalogue = supervisor.sql["catalogue"]
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer():
        n = 0
        while not stop.is_set():
            pid = ids[n % len(ids)]
            app.move_label(owner, org, pid, "staging", 1 + n % 1, "w")
            app.revise_prompt(owner, org, pid, base_version=app.read_prompt(owner, org, pid).latest_version,
                              request_id="w", template=f"t{n} {{{{x}}}}")
            n += 1

    def runner():
        while not stop.is_set():
            try:
                catch_up(catalogue, supervisor.source, batch_size=7)
            except BaseException as exc:  # noqa: BLE001 - collected, asserted below
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer), threading.Thread(target=runner), threading.Thread(target=runner)]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            supervisor.rebuild("catalogue")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    catch_up(catalogue, supervisor.source)
    live = dump(container.engine, catalogue)
    supervisor.rebuild("catalogue")
    assert dump(container.engine, catalogue) == live


def test_label_history_is_filtered_by_org_at_the_source(container):
    """The query's org filter was masked by the route's existence check: removing it broke no test."""
    moved_at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [dict(org_id=org, prompt_id="p-1", position=pos, label="production", from_version=None, to_version=1,
                 actor="user:x", moved_at=moved_at, review_id="", requested_by="", approved_by=[])
            for org, pos in (("org-a", 1), ("org-b", 2))]
    with write(container.engine) as conn:
        conn.execute(insert(label_moves), rows)
    history = container.label_history
    assert [r["position"] for r in history.list("org-a", "p-1")] == [1]
    assert [r["position"] for r in history.list("org-b", "p-1")] == [2]
    assert history.list("org-c", "p-1") == []


def test_sqlite_reads_do_not_wait_for_a_writer(container):
    """`BEGIN IMMEDIATE` was issued for read-only transactions too: a read waited behind a write.
    WAL readers see the last committed state while a write transaction is open."""
    if not is_sqlite(container.engine):
        pytest.skip("SQLite-specific (Postgres readers never wait for writers)")
    app = container.app
    owner, org = _owner(app)
    app.create_prompt(owner, org, name="readable", template="t", request_id="r")
    container.supervisor.catch_up()
    holding, release = threading.Event(), threading.Event()

    def hold_the_write_lock():
        with write(container.engine) as conn:
            tracking.lock(conn, "catalogue")
            holding.set()
            release.wait(10)

    with ThreadPoolExecutor(2) as pool:
        writer = pool.submit(hold_the_write_lock)
        assert holding.wait(10)
        reader = pool.submit(container.catalogue.fetch, str(org), "readable")
        row = reader.result(timeout=5)  # would block on the write lock (busy timeout 30 s) before the fix
        assert row is not None and row["template"] == "t"
        assert not writer.done(), "the read happened while the write transaction was still open"
        release.set()
        writer.result(timeout=10)
