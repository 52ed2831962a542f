"""The live catch-up reads each new batch of the log once for all its projections (adr/0029), and
folds exactly what reading per projection folded. On both backends."""
from __future__ import annotations

from application import Principal
from tests.support.history import drive_history
from tests.support.tables import dump


def _counting(container):
    """The reads of the log that the supervisor's source passes on (the application's own reads of
    new events, for its caches, are not counted)."""
    log = container.supervisor.source.source
    original = log.read
    calls = []

    def read(after, limit):
        calls.append((after, limit))
        return original(after, limit)

    log.read = read
    return calls


def test_a_catch_up_round_reads_each_batch_of_the_log_once(container):
    drive_history(container.app, orgs=1, prompts_per_org=4, seed=11)
    container.supervisor.catch_up()
    calls = _counting(container)
    uid = container.app.register_user("reads@x.io", "correct horse battery", "R", "r-1")[0]
    org = container.app.create_organisation(Principal.user(uid), "Reads", "r-2").id
    for i in range(3):
        container.app.create_prompt(Principal.user(uid), org, name=f"read {i}", template="Hello {{who}}",
                                    message="m", request_id=f"r-p{i}")
    assert len(container.supervisor.sql) >= 10
    container.supervisor.catch_up()
    # one read of the new events: the first projection's answer was short (the run reached the
    # head), so the others are answered from it
    assert len(calls) == 1, calls
    assert container.supervisor.passed(container.app.recorder.max_notification_id())


def test_shared_reads_in_small_batches_fold_what_a_rebuild_folds(make_settings):
    """Batches of 7 events: the projections' reads are full pages answered from the run, pages the
    run ends early completed from the log, and runs continued; each projection's tables equal what
    a rebuild of it alone (reading the log itself) makes, row for row."""
    from interfaces.bootstrap import build

    c = build(make_settings(projection_batch_size=7))
    try:
        drive_history(c.app, orgs=2, prompts_per_org=5, seed=12)
        calls = _counting(c)
        c.supervisor.catch_up()
        head = c.app.recorder.max_notification_id()
        assert len(calls) < head / 7 + 3  # about one read per batch, not one per projection and batch
        live = {name: dump(c.engine, p) for name, p in c.supervisor.sql.items()}
        for name in c.supervisor.sql:
            c.supervisor.rebuild(name)
            assert dump(c.engine, c.supervisor.sql[name]) == live[name], name
    finally:
        c.close()
