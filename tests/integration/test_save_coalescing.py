"""Group commit on Postgres (application.coalesce, on by default: PROMPTFORGE_COALESCE_SAVES): concurrent commands of one
process share transactions of the event store, every command is applied exactly once, and a
command that loses a race (a stale revision) fails alone."""
from __future__ import annotations

import threading
from collections import Counter

import pytest

from application import Principal
from domain.errors import Conflict
from interfaces.bootstrap import build

THREADS = 16
PER_THREAD = 6


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_concurrent_commands_share_saves_and_each_applies_once(make_settings):
    container = build(make_settings())  # on by default on Postgres
    try:
        app = container.app
        assert app.save_coalescer is not None
        user_id, _ = app.register_user("coalesce@example.com", "correct horse battery", "C", "r")
        owner = Principal.user(user_id)
        org = app.create_organisation(owner, "Coalesce", "r").id
        app.update_organisation(owner, org, "plan", plan="PRO")
        own = [app.create_prompt(owner, org, name=f"own-{t}", template="v1 {{x}}", request_id="r").id
               for t in range(THREADS)]
        shared = app.create_prompt(owner, org, name="shared", template="v1 {{x}}", request_id="r").id
        before = (app.save_coalescer.transactions, app.save_coalescer.saves)
        barrier = threading.Barrier(THREADS)
        outcomes: Counter = Counter()
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work(t: int) -> None:
            barrier.wait()
            for i in range(PER_THREAD):
                app.revise_prompt(owner, org, own[t], base_version=i + 1, template=f"t{t} v{i + 2} {{{{x}}}}",
                                  request_id=f"{t}-{i}")
                if i:
                    continue
                try:  # every thread revises the shared prompt from version 1: one wins, the rest are stale
                    app.revise_prompt(owner, org, shared, base_version=1, template=f"shared by {t} {{{{x}}}}",
                                      request_id=f"s{t}")
                    with lock:
                        outcomes["won"] += 1
                except Conflict as exc:
                    with lock:
                        outcomes[exc.code] += 1
                except BaseException as exc:  # noqa: BLE001 - asserted below
                    with lock:
                        errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert outcomes["won"] == 1 and outcomes["PROMPT_VERSION_CONFLICT"] == THREADS - 1
        for t, prompt_id in enumerate(own):  # every revision applied once, in order
            prompt = app.repository.get(prompt_id)
            assert prompt.latest_version == PER_THREAD + 1
            assert [v["template"] for v in prompt.versions[1:]] == [f"t{t} v{i + 2} {{{{x}}}}" for i in range(PER_THREAD)]
        assert app.repository.get(shared).latest_version == 2
        transactions = app.save_coalescer.transactions - before[0]
        saves = app.save_coalescer.saves - before[1]
        assert saves == THREADS * PER_THREAD + 1 and transactions < saves  # some saves did share a transaction
        # The log: no event twice, ids in order of versions per stream.
        notifications = app.recorder.select_notifications(1, 10_000)
        keys = [(n.originator_id, n.originator_version) for n in notifications]
        assert len(keys) == len(set(keys))
        for prompt_id in own:
            versions = [v for o, v in keys if o == prompt_id]
            assert versions == sorted(versions) == list(range(1, PER_THREAD + 2))
    finally:
        container.close()


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_on_by_default_and_off_when_asked(make_settings):
    for setting, expected in ((True, True), (False, False)):
        container = build(make_settings(coalesce_saves=setting))  # PROMPTFORGE_COALESCE_SAVES
        try:
            assert (container.app.save_coalescer is not None) is expected
        finally:
            container.close()
