"""Rebuilds (adr/0020): one pass over the log for every projection, folded in batches into tables
built beside the live ones and switched to atomically with the position, so reads keep answering
all along. On both backends."""
from __future__ import annotations

import threading
import time
from functools import singledispatchmethod

import pytest
from sqlalchemy import event, inspect

from application import Principal
from domain.prompt import Prompt
from projections import beside, catchup, tracking
from projections.catalogue import KeywordSearch
from projections.catchup import RebuildFailed, catch_up, catch_up_once
from projections.label_history import LabelHistory
from tests.support.history import drive_history
from tests.support.tables import dump


class CountingSource:
    """The container's source, counting the events it hands out (and able to pause)."""

    def __init__(self, source):
        self.source = source
        self.events = 0
        self.reads = 0
        self.pause_at_read: int | None = None
        self.paused, self.resume = threading.Event(), threading.Event()

    def read(self, after, limit):
        self.reads += 1
        if self.reads == self.pause_at_read:
            self.paused.set()
            assert self.resume.wait(30)
        batch = self.source.read(after, limit)
        self.events += len(batch)
        return batch

    def head(self):
        return self.source.head()


def _answers(container, org: str, names: list[str]) -> dict:
    """What the interfaces read: the list, by-name fetches, history, audit, members."""
    catalogue = container.catalogue
    return {
        "list": [r["prompt_id"] for r in catalogue.list(org, limit=200).items],
        "fetch": {n: (row["prompt_id"], row["resolved"], row["template"])
                  for n in names if (row := catalogue.fetch(org, n)) is not None},
        "audit": [r["position"] for r in container.audit.query(org, limit=200)[0]],
        "members": [r["user_id"] for r in container.memberships.members(org)],
        "changes": [r["position"] for r in container.changes.after(org, 0, audit=True, limit=1000)],
    }


def _world(container):
    world = drive_history(container.app, orgs=2, prompts_per_org=6, seed=5)
    container.supervisor.catch_up()
    org = str(world.orgs["org0"])
    names = [r["name"] for r in container.catalogue.list(org, limit=200).items]
    return world, org, names


def _leftovers(container) -> list[str]:
    return [t for t in inspect(container.engine).get_table_names() if t.endswith(beside.SUFFIX)]


def test_reads_keep_answering_during_a_rebuild(container):
    """The rebuild deleted every row and replayed into the live tables: until it finished, lists came
    back short and by-name fetches answered 404. Now the live tables answer until the switch."""
    world, org, names = _world(container)
    expected = _answers(container, org, names)
    assert len(expected["list"]) >= 6 and expected["fetch"]
    source = CountingSource(container.supervisor.source)
    source.pause_at_read = 2  # after the first batch was folded into the new tables
    projections = list(container.projections.values())
    errors: list[BaseException] = []

    def rebuild():
        try:
            catchup.rebuild(projections, source, batch_size=40)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    stop = threading.Event()
    seen: list[dict] = []

    def reader():
        while not stop.is_set():
            try:
                seen.append(_answers(container, org, names))
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
                return

    rebuilding = threading.Thread(target=rebuild)
    reading = threading.Thread(target=reader)
    rebuilding.start()
    reading.start()
    try:
        assert source.paused.wait(30)
        assert "rm_prompts" + beside.SUFFIX in _leftovers(container)  # half built, beside the live tables
        assert _answers(container, org, names) == expected
        source.resume.set()
        rebuilding.join(60)
    finally:
        source.resume.set()
        stop.set()
        rebuilding.join(60)
        reading.join(60)
    assert errors == []
    assert seen and all(answer == expected for answer in seen), "a read during the rebuild answered differently"
    assert _answers(container, org, names) == expected
    assert _leftovers(container) == []
    head = container.supervisor.source.head()
    assert all(p.position == head for n, p in tracking.read_all(container.engine).items() if n in container.projections)


def test_a_read_during_the_switch_sees_the_old_or_the_new_tables(container, monkeypatch):
    """Held open inside the switch (new tables renamed in, not committed yet): SQLite readers read the
    last committed state without waiting; Postgres readers wait for the switch, then read the new
    tables. Neither sees an empty or missing table."""
    world, org, names = _world(container)
    expected = _answers(container, org, names)
    inside, release = threading.Event(), threading.Event()
    original = beside.HOOKS["rm_prompts"]

    def hold(conn):
        if original.after_switch:
            original.after_switch(conn)
        inside.set()
        assert release.wait(30)

    monkeypatch.setitem(beside.HOOKS, "rm_prompts", beside.Hooks(original.index, original.before_switch, hold))
    rebuilding = threading.Thread(target=lambda: container.supervisor.rebuild("catalogue"))
    rebuilding.start()
    try:
        assert inside.wait(30)
        answer: list = []
        reading = threading.Thread(target=lambda: answer.append(_answers(container, org, names)))
        reading.start()
        reading.join(2)
        if container.engine.dialect.name == "sqlite":
            assert answer == [expected], "a SQLite reader waited for the switch"
        else:
            assert reading.is_alive(), "a Postgres reader read through the switch's exclusive lock"
        release.set()
        reading.join(30)
        assert answer == [expected]
    finally:
        release.set()
        rebuilding.join(60)
    assert _answers(container, org, names) == expected


def test_rebuild_all_reads_the_log_once_and_equals_the_live_tables(container):
    drive_history(container.app, orgs=2, prompts_per_org=6, seed=11)
    container.supervisor.catch_up()
    live = {name: dump(container.engine, p) for name, p in container.projections.items()}
    source = CountingSource(container.supervisor.source)
    head = source.head()
    rebuilt = catchup.rebuild(list(container.projections.values()), source, batch_size=25)
    assert source.events == head, "every event is read (and decoded) once, for all projections together"
    assert rebuilt == {name: head for name in container.projections}
    assert {name: dump(container.engine, p) for name, p in container.projections.items()} == live


def test_batch_sizes_and_memory_limits_do_not_change_the_read_models(container):
    """Live batches of one event (every row loaded from the tables), one rebuild pass (every row in
    memory), and a rebuild that must write out and forget its rows every batch (loads them back
    from the new tables) all give the same tables."""
    drive_history(container.app, orgs=1, prompts_per_org=8, seed=3)
    source = container.supervisor.source
    for projection in container.projections.values():
        catch_up(projection, source, batch_size=1)
    one_by_one = {name: dump(container.engine, p) for name, p in container.projections.items()}
    catchup.rebuild(list(container.projections.values()), source, batch_size=9, max_rows=3)
    assert {name: dump(container.engine, p) for name, p in container.projections.items()} == one_by_one
    container.supervisor.rebuild_all()
    assert {name: dump(container.engine, p) for name, p in container.projections.items()} == one_by_one
    assert _leftovers(container) == []


def test_rebuilt_tables_have_the_layout_create_all_makes(container):
    """Same indexes (names included: the next `create_all`, schema upgrade or rebuild relies on them),
    keys and unique constraints; the full-text index is rebuilt too."""
    _, org, names = _world(container)

    def layout():
        inspector = inspect(container.engine)
        out = {}
        for projection in container.projections.values():
            for t in projection.tables:
                out[t.name] = (
                    sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                           for i in inspector.get_indexes(t.name) if i["name"]),
                    tuple(inspector.get_pk_constraint(t.name)["constrained_columns"]),
                    inspector.get_pk_constraint(t.name)["name"],  # built after the load on Postgres (adr/0027)
                    sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(t.name)),
                    [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(t.name)],
                )
        return out

    before = layout()
    keyword = KeywordSearch(container.engine)
    word = names[0].split()[0]
    hits = [h.prompt_id for h in keyword.search(org, word, 10)]
    assert hits
    container.supervisor.rebuild_all()
    assert layout() == before
    assert [h.prompt_id for h in keyword.search(org, word, 10)] == hits
    if container.engine.dialect.name == "postgresql":
        with container.engine.connect() as conn:
            fts = conn.exec_driver_sql("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                                       "AND indexname = 'ix_rm_prompts_fts'").scalar()
        assert fts and "gin" in fts.lower()


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_rebuilt_tables_have_statistics_from_a_small_sample_at_the_switch(container):
    """Every column of every rebuilt table has the planner's statistics as soon as the switch is
    done, gathered from a sample of 300 x `beside.ANALYZE_TARGET` rows (adr/0028): a histogram of a
    column with many distinct values has at most ANALYZE_TARGET + 1 bounds, not the default's 101."""
    _world(container)
    container.supervisor.rebuild_all()
    with container.engine.connect() as conn:
        def stats(table):
            return {r[0]: r[1] for r in conn.exec_driver_sql(
                "SELECT attname, histogram_bounds::text FROM pg_stats WHERE schemaname = current_schema() "
                "AND tablename = %(t)s", {"t": table})}

        for projection in container.projections.values():
            for t in projection.tables:
                count = conn.exec_driver_sql(f'SELECT count(*) FROM "{t.name}"').scalar()
                if count:
                    assert set(stats(t.name)) == {c.name for c in t.columns}, t.name
        audit_rows = conn.exec_driver_sql("SELECT count(*) FROM rm_audit_log").scalar()
        bounds = stats("rm_audit_log")["position"]
    assert audit_rows > beside.ANALYZE_TARGET + 1
    assert bounds is not None and bounds.count(",") + 1 <= beside.ANALYZE_TARGET + 1


class Twice(LabelHistory):
    """Appends a label move's row twice: a duplicate primary key in an appended table."""

    def apply(self, batch, unit):
        super().apply(batch, unit)
        state = unit.states[self.table]
        state.pending.extend(list(state.pending))


def test_a_duplicate_key_fails_the_rebuild_of_its_projection_only(container):
    """Tables built beside get their primary key after the load (Postgres, adr/0027): a duplicate key
    an appended table received then fails the building of the key, and so the projection's rebuild,
    exactly as the COPY failed when the key was there from the start."""
    _world(container)
    before = dump(container.engine, container.label_history)
    projections = [p if p.name != "label_history" else Twice(container.engine) for p in container.projections.values()]
    with pytest.raises(RebuildFailed) as failed:
        catchup.rebuild(projections, container.supervisor.source, batch_size=50)
    assert set(failed.value.failures) == {"label_history"}
    assert dump(container.engine, container.label_history) == before
    assert _leftovers(container) == []


class Broken(LabelHistory):
    @singledispatchmethod
    def row(self, event, env):
        return LabelHistory.row(self, event, env)

    @row.register
    def _(self, event: Prompt.LabelMoved, env):
        raise RuntimeError("disk full")


def test_a_projection_failing_its_rebuild_is_left_as_it_was(container):
    _world(container)
    before = dump(container.engine, container.label_history)
    position = tracking.read_all(container.engine)["label_history"].position
    app = container.app
    owner = Principal.user(app.register_user("late@example.com", "correct horse battery", "L", "r")[0])
    org = app.create_organisation(owner, "Late", "r").id
    app.create_prompt(owner, org, name="late", template="t", request_id="r")  # not caught up: the others get it
    projections = [p if p.name != "label_history" else Broken(container.engine) for p in container.projections.values()]
    with pytest.raises(RebuildFailed) as failed:
        catchup.rebuild(projections, container.supervisor.source, batch_size=50)
    assert set(failed.value.failures) == {"label_history"} and "disk full" in str(failed.value)
    head = container.supervisor.source.head()
    assert failed.value.rebuilt == {p.name: head for p in projections if p.name != "label_history"}
    assert dump(container.engine, container.label_history) == before
    positions = tracking.read_all(container.engine)
    assert positions["label_history"].position == position < head
    assert all(positions[p.name].position == head for p in projections if p.name != "label_history")
    assert container.catalogue.fetch(str(org), "late") is not None
    assert _leftovers(container) == []


def test_a_live_batch_takes_a_few_statements_whatever_its_size(container):
    """The fold sent ~5 statements per prompt event (1.49 per log event); a batch is now loaded with
    one query per table and written with one statement per table and kind."""
    app = container.app
    owner = Principal.user(app.register_user("n@example.com", "correct horse battery", "N", "r")[0])
    org = app.create_organisation(owner, "N", "r").id
    app.update_organisation(owner, org, "r", protected_labels=[])
    container.supervisor.catch_up()
    for i in range(40):
        pid = app.create_prompt(owner, org, name=f"p{i}", template="t {{x}}", tags=["a", f"t{i}"], request_id="r").id
        app.revise_prompt(owner, org, pid, base_version=1, request_id="r", template="u {{x}}", tags=["b"])
        app.move_label(owner, org, pid, "production", 2, "r")
    counted: list[str] = []

    def count(conn, cursor, statement, *args):
        counted.append(statement)

    event.listen(container.engine, "before_cursor_execute", count)
    try:
        events = catch_up_once(container.catalogue, container.supervisor.source, batch_size=1000)
    finally:
        event.remove(container.engine, "before_cursor_execute", count)
    assert events >= 200
    assert len(counted) <= 20, counted


def test_a_rebuild_under_writes_and_live_catch_up_converges(container):
    """Rebuilding every projection while commands write and a runner catches up: nothing is lost or
    doubled (the switch folds what was logged since the pass, under the tracking lock)."""
    world, org, _ = _world(container)
    app = container.app
    owner = Principal.user(world.users["ann"])
    stop = threading.Event()
    errors: list[BaseException] = []

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
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer), threading.Thread(target=runner)]
    for t in threads:
        t.start()
    try:
        for _ in range(2):
            container.supervisor.rebuild_all()
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert errors == []
    container.supervisor.catch_up()
    live = {name: dump(container.engine, p) for name, p in container.projections.items()}
    container.supervisor.rebuild_all()
    assert {name: dump(container.engine, p) for name, p in container.projections.items()} == live
    assert sum(1 for r in container.catalogue.list(org, limit=200, name_prefix="during-").items) > 0


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_write_failing_in_the_writer_thread_fails_only_its_projection(container, monkeypatch):
    """On Postgres the rows are COPYed by a writer thread on its own connection: a failure there
    (here: the label history's rows refused) fails that projection alone; the others switch, the
    failed one keeps its live tables and position, and no table built beside is left behind."""
    _world(container)
    before = dump(container.engine, container.label_history)
    position = tracking.read_all(container.engine)["label_history"].position
    refused = {t.name for t in container.label_history.tables}
    original = catchup._write
    calls = []

    def write(ops, conn):
        calls.append(threading.current_thread().name)
        if any(op.target.name.removesuffix(beside.SUFFIX) in refused for op in ops):
            raise RuntimeError("disk full")
        return original(ops, conn)

    monkeypatch.setattr(catchup, "_write", write)
    projections = list(container.projections.values())
    with pytest.raises(RebuildFailed) as failed:
        catchup.rebuild(projections, container.supervisor.source, batch_size=50)
    assert calls and all(name.startswith("rebuild-write") for name in calls)  # the writer thread's path
    assert set(failed.value.failures) == {"label_history"} and "disk full" in str(failed.value)
    head = container.supervisor.source.head()
    assert failed.value.rebuilt == {p.name: head for p in projections if p.name != "label_history"}
    assert dump(container.engine, container.label_history) == before
    assert tracking.read_all(container.engine)["label_history"].position == position
    assert _leftovers(container) == []
