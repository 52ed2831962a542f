"""A rebuild shared among processes (projections.forked, catchup.rebuild(processes=2), Postgres): the
same tables as one process, row for row; a failure (or the death) of a child fails its projections
only; reads keep answering and the rebuild converges under writes and live catch-up."""
from __future__ import annotations

import os
import threading
import time
from functools import singledispatchmethod

import pytest
from sqlalchemy import inspect

from application import Principal
from domain.prompt import Prompt
from projections import beside, catchup, forked, tracking
from projections.audit import AuditLog
from projections.catchup import RebuildFailed
from projections.label_history import LabelHistory
from projections.source import PostgresLog
from tests.support.history import drive_history
from tests.support.tables import dump

postgres = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def _leftovers(container) -> list[str]:
    return [t for t in inspect(container.engine).get_table_names() if t.endswith(beside.SUFFIX)]


def _live(container) -> dict:
    return {name: dump(container.engine, p) for name, p in container.projections.items()}


class WherePids:
    """Records the process that folds each event (a handler of a projection subclass calls it)."""

    def __init__(self, tmp_path):
        self.path = tmp_path / "pids"

    def __call__(self, name: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{name} {os.getpid()}\n")

    def seen(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for line in self.path.read_text().splitlines():
            name, pid = line.split()
            out.setdefault(name, set()).add(int(pid))
        return out


def _recording(cls, where: WherePids):
    class Recording(cls):
        def apply(self, batch, unit):
            where(self.name)
            return super().apply(batch, unit)

    Recording.__name__ = f"Recording{cls.__name__}"
    return Recording


@postgres
def test_two_processes_build_the_tables_one_process_builds(container, tmp_path):
    drive_history(container.app, orgs=2, prompts_per_org=6, seed=11)
    container.supervisor.catch_up()
    live = _live(container)
    where = WherePids(tmp_path)
    projections = [_recording(type(p), where)(container.engine) for p in container.projections.values()]
    groups = forked.share(projections, 2)
    assert len(groups) == 2 and all(groups)
    timings: dict = {}
    rebuilt = catchup.rebuild(projections, container.supervisor.source, batch_size=40, processes=2, timings=timings)
    head = container.supervisor.source.head()
    assert rebuilt == {p.name: head for p in projections}
    assert _live(container) == live
    seen = where.seen()
    assert seen[groups[0][0].name] == {os.getpid()}
    child = seen[groups[1][0].name]
    assert len(child) == 1 and child != {os.getpid()}, "the second group is folded in another process"
    assert all(seen[p.name] == child for p in groups[1] if p.name in seen)
    assert "process 2" in timings and all(p.name in timings for p in projections)
    assert all(s.position == head for s in container.supervisor.status() if s.name in container.projections)
    assert _leftovers(container) == []


def test_on_sqlite_or_with_one_process_the_rebuild_stays_in_this_process(container, tmp_path):
    drive_history(container.app, orgs=1, prompts_per_org=8, seed=3)
    container.supervisor.catch_up()
    live = _live(container)
    where = WherePids(tmp_path)
    projections = [_recording(type(p), where)(container.engine) for p in container.projections.values()]
    processes = 1 if container.engine.dialect.name == "postgresql" else 2
    catchup.rebuild(projections, container.supervisor.source, batch_size=40, processes=processes)
    assert _live(container) == live
    assert set().union(*where.seen().values()) == {os.getpid()}


class Broken(LabelHistory):
    @singledispatchmethod
    def row(self, event, env):
        return LabelHistory.row(self, event, env)

    @row.register
    def _(self, event: Prompt.LabelMoved, env):
        raise RuntimeError("disk full")


class Dying(AuditLog):
    """Ends its process in the middle of the pass (as the kernel's OOM killer would)."""

    def apply(self, batch, unit):
        if os.getpid() != self.parent:
            os._exit(3)
        return super().apply(batch, unit)


def _late_prompt(container):
    app = container.app
    owner = Principal.user(app.register_user("late@example.com", "correct horse battery", "L", "r")[0])
    org = app.create_organisation(owner, "Late", "r").id
    app.create_prompt(owner, org, name="late", template="t", request_id="r")  # not caught up: the others get it
    return org


@postgres
def test_a_projection_failing_in_a_child_fails_alone(container, monkeypatch):
    monkeypatch.setitem(forked.WEIGHTS, "label_history", 3.0)  # a child's, whatever the measured weights
    drive_history(container.app, orgs=1, prompts_per_org=6, seed=5)
    container.supervisor.catch_up()
    before = _live(container)
    positions = {n: p.position for n, p in tracking.read_all(container.engine).items()}
    org = _late_prompt(container)
    projections = [p if p.name != "label_history" else Broken(container.engine) for p in container.projections.values()]
    groups = forked.share(projections, 2)
    assert any(p.name == "label_history" for p in groups[1]), "the broken projection is a child's"
    with pytest.raises(RebuildFailed) as failed:
        catchup.rebuild(projections, container.supervisor.source, batch_size=50, processes=2)
    assert set(failed.value.failures) == {"label_history"}
    assert "RuntimeError: disk full" in str(failed.value)
    head = container.supervisor.source.head()
    assert failed.value.rebuilt == {p.name: head for p in projections if p.name != "label_history"}
    assert dump(container.engine, container.label_history) == before["label_history"]
    now = tracking.read_all(container.engine)
    assert now["label_history"].position == positions["label_history"] < head
    assert all(now[p.name].position == head for p in projections if p.name != "label_history")
    assert container.catalogue.fetch(str(org), "late") is not None
    assert _leftovers(container) == []


@postgres
def test_a_child_that_dies_fails_its_projections_only_and_leaves_no_tables(container):
    drive_history(container.app, orgs=2, prompts_per_org=6, seed=11)
    container.supervisor.catch_up()
    before = _live(container)
    positions = {n: p.position for n, p in tracking.read_all(container.engine).items()}
    org = _late_prompt(container)
    dying = Dying(container.engine)
    dying.parent = os.getpid()
    projections = [p if p.name != "audit" else dying for p in container.projections.values()]
    groups = forked.share(projections, 2)
    child = {p.name for p in groups[1]}
    assert "audit" in child
    with pytest.raises(RebuildFailed) as failed:
        catchup.rebuild(projections, container.supervisor.source, batch_size=50, processes=2)
    assert set(failed.value.failures) == child
    assert all(isinstance(e, forked.RebuildProcessFailed) and "exit status 3" in str(e)
               for e in failed.value.failures.values())
    head = container.supervisor.source.head()
    assert failed.value.rebuilt == {p.name: head for p in groups[0]}
    after = _live(container)
    now = tracking.read_all(container.engine)
    for name in child:
        assert after[name] == before[name] and now[name].position == positions[name] < head
    assert container.catalogue.fetch(str(org), "late") is not None
    assert _leftovers(container) == []


@postgres
def test_under_writes_and_live_catch_up_two_processes_converge(container):
    world = drive_history(container.app, orgs=2, prompts_per_org=6, seed=5)
    container.supervisor.catch_up()
    org = str(world.orgs["org0"])
    initially = len(container.catalogue.list(org, limit=200).items)
    app = container.app
    owner = Principal.user(world.users["ann"])
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def writer():
        i = 0
        while not stop.is_set() and i < 60:
            app.create_prompt(owner, world.orgs["org0"], name=f"during-{i}", template="t", request_id="w")
            i += 1
            time.sleep(0.005)

    def runner():
        while not stop.is_set():
            try:
                container.supervisor.catch_up()
                seen.append(len(container.catalogue.list(org, limit=200).items))
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer), threading.Thread(target=runner)]
    for t in threads:
        t.start()
    try:
        for _ in range(2):
            catchup.rebuild(list(container.projections.values()), container.supervisor.source, processes=2)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert errors == []
    assert seen and min(seen) >= initially > 0, "reads kept answering from whole tables"
    container.supervisor.catch_up()
    live = _live(container)
    catchup.rebuild(list(container.projections.values()), container.supervisor.source)
    assert _live(container) == live
    assert sum(1 for _ in container.catalogue.list(org, limit=200, name_prefix="during-").items) > 0
    assert _leftovers(container) == []


@postgres
def test_the_log_read_on_its_own_connection_is_the_log(container):
    """What a child reads (PostgresLog: its own connection, rows as tuples, topics no projection wants
    left out by the server) are the events the application's recorder gives, with the same counts."""
    drive_history(container.app, orgs=1, prompts_per_org=8, seed=3)
    source = container.supervisor.source
    log = source.postgres_log()
    assert isinstance(log, PostgresLog)
    try:
        expected = source.read(0, 10_000)
        assert [(e.position, e.event.__dict__) for e in log.read(0, 10_000)] == \
            [(e.position, e.event.__dict__) for e in expected]
        assert log.head() == source.head() == expected[-1].position
        wanted = lambda topic: "Index" not in topic  # noqa: E731
        one_pass = log.open_pass()
        try:
            after, pages = 0, []
            while True:
                page = one_pass.read_wanted(after, 7, wanted)
                if page[1] is None:
                    break
                pages.append(page)
                assert _same(page, source.read_wanted(after, 7, wanted))
                after = page[1].position
            assert one_pass.unwanted, "the server left out the topics found unwanted"
        finally:
            one_pass.close()
        assert sum(p[2] for p in pages) == len(expected)
        by_recorder = [e.position for e in expected if wanted(type(e.event).__module__ + ":" + type(e.event).__qualname__)]
        assert [e.position for p in pages for e in p[0]] == by_recorder
    finally:
        log.close()


def _same(a, b) -> bool:
    def flat(page):
        events, last, n = page
        return [(e.position, e.event.__dict__) for e in events], (last.position, last.event.__dict__), n

    return flat(a) == flat(b)


@postgres
def test_the_cli_rebuilds_all_in_two_processes_by_default(container, make_settings, monkeypatch):
    from click.testing import CliRunner

    from interfaces.cli import main

    drive_history(container.app, orgs=1, prompts_per_org=8, seed=3)
    container.supervisor.catch_up()
    live = _live(container)
    settings = make_settings()
    for key, value in {"PROMPTFORGE_EVENT_STORE_URL": settings.event_store_url,
                       "PROMPTFORGE_READ_MODEL_URL": settings.read_model_url, "PROMPTFORGE_DATA_DIR": str(settings.data_dir),
                       "PROMPTFORGE_ENV": "test", "PROMPTFORGE_VECTORS_ENABLED": "false"}.items():
        monkeypatch.setenv(key, value)
    started: list[int] = []
    original = forked.start
    monkeypatch.setattr(forked, "start", lambda *a, **kw: started.append(1) or original(*a, **kw))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    result = CliRunner().invoke(main, ["projections", "rebuild", "--all"])
    assert result.exit_code == 0, result.output
    assert started == [1], "one child besides the CLI's process"
    assert _live(container) == live
    result = CliRunner().invoke(main, ["projections", "rebuild", "--all", "--processes", "1"])
    assert result.exit_code == 0, result.output
    assert started == [1]
    assert _live(container) == live
    assert _leftovers(container) == []


@postgres
def test_when_no_process_can_be_started_this_one_rebuilds_everything(container, monkeypatch):
    drive_history(container.app, orgs=1, prompts_per_org=8, seed=3)
    container.supervisor.catch_up()
    live = _live(container)

    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    rebuilt = catchup.rebuild(list(container.projections.values()), container.supervisor.source, processes=2)
    head = container.supervisor.source.head()
    assert rebuilt == {name: head for name in container.projections}
    assert _live(container) == live
    assert _leftovers(container) == []
