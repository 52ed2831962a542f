"""The worker's catch-up actor (workers.actors): a nudge per commit, and one whose position every
projection has already applied folds nothing and dispatches nothing (one read of the tracking rows,
not a pass over every projection and the webhook sweep's queries: the catch-up that folded it
dispatched); a nudge ahead of them catches up and dispatches webhooks."""
from __future__ import annotations

from dramatiq.brokers.stub import StubBroker

from application import Principal
from interfaces.bootstrap import build
from workers.actors import register
from workers.broker import CATCH_UP_ACTOR


def test_a_nudge_already_folded_skips_the_catch_up(make_settings):
    container = build(make_settings())
    try:
        app = container.app
        owner = Principal.user(app.register_user("nudge@example.com", "correct horse battery", "N", "r")[0])
        org = app.create_organisation(owner, "Nudges", "r").id
        first = app.create_prompt(owner, org, name="one", template="t", request_id="r").position
        supervisor, dispatcher = container.supervisor, container.dispatcher
        calls = {"catch_up": 0, "enqueue": 0}
        catch_up, enqueue = supervisor.catch_up, dispatcher.enqueue

        def counted_catch_up(*args, **kwargs):
            calls["catch_up"] += 1
            return catch_up(*args, **kwargs)

        def counted_enqueue(*args, **kwargs):
            calls["enqueue"] += 1
            return enqueue(*args, **kwargs)

        supervisor.catch_up, dispatcher.enqueue = counted_catch_up, counted_enqueue
        actor = register(StubBroker(), lambda: container)[CATCH_UP_ACTOR]
        actor.fn(first)  # not folded yet: catches up
        assert calls == {"catch_up": 1, "enqueue": 1} and supervisor.passed(first)
        actor.fn(first)  # a second nudge for it: nothing to fold, nothing to dispatch
        assert calls == {"catch_up": 1, "enqueue": 1}
        second = app.create_prompt(owner, org, name="two", template="t", request_id="r").position
        actor.fn(second)
        assert calls == {"catch_up": 2, "enqueue": 2} and supervisor.passed(second)
        actor.fn(None)  # the tick's kind of call (no position): always catches up and dispatches
        assert calls == {"catch_up": 3, "enqueue": 3}
        assert container.catalogue.fetch(str(org), "two") is not None
    finally:
        container.close()
