"""Time travel folds the stream's PREFIX up to `as_of`, on both backends.

Filtering events by timestamp broke when timestamps were not monotonic (a clock stepped back, skewed
hosts): a later event with an earlier timestamp was kept while the one before it was skipped, the
fold failed, and the API answered 500."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count

import pytest

from application import Principal
from domain.errors import NotFound
from domain.prompt import Prompt

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock(monkeypatch):
    """Every Prompt event gets the next timestamp from `clock.times` (seconds after T0)."""

    class Clock:
        times: list[float] = []
        calls = count()

    def now():
        i = next(Clock.calls)
        return T0 + timedelta(seconds=Clock.times[i] if i < len(Clock.times) else 1000 + i)

    monkeypatch.setattr(Prompt.Event, "create_timestamp", staticmethod(now))
    return Clock


def _setup(app):
    user_id, _ = app.register_user("tt@example.com", "correct horse battery", "T", "r")
    owner = Principal.user(user_id)
    org = app.create_organisation(owner, "TT", "r").id
    app.update_organisation(owner, org, "r", protected_labels=[])
    return owner, org


def test_a_clock_stepping_back_does_not_break_time_travel(container, clock):
    app = container.app
    owner, org = _setup(app)
    # created at +0, v2 at +10, v3 at +5 (the clock stepped back), production -> 3 at +20
    clock.times = [0, 10, 5, 20]
    clock.calls = count()
    pid = app.create_prompt(owner, org, name="skewed", template="v1 {{x}}", request_id="r").id
    app.revise_prompt(owner, org, pid, base_version=1, request_id="r", template="v2 {{x}}")
    app.revise_prompt(owner, org, pid, base_version=2, request_id="r", template="v3 {{x}}")
    app.move_label(owner, org, pid, "production", 3, "r")
    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    assert app.read_prompt(owner, org, pid, at(7)).latest_version == 1  # v3's earlier stamp is after v2's event
    assert app.read_prompt(owner, org, pid, at(12)).latest_version == 3  # the prefix up to the label move
    assert app.read_prompt(owner, org, pid, at(12)).labels == {}
    assert app.read_prompt(owner, org, pid, at(25)).labels == {"production": 3}


def test_as_of_an_events_exact_timestamp_includes_that_event(container):
    app = container.app
    owner, org = _setup(app)
    pid = app.create_prompt(owner, org, name="edge", template="v1 {{x}}", request_id="r").id
    app.revise_prompt(owner, org, pid, base_version=1, request_id="r", template="v2 {{x}}")
    created, revised = list(app.events.get(pid))
    assert app.read_prompt(owner, org, pid, created.timestamp).latest_version == 1
    assert app.read_prompt(owner, org, pid, revised.timestamp).latest_version == 2  # inclusive: `<=`, not `<`
    assert app.read_prompt(owner, org, pid, revised.timestamp - timedelta(microseconds=1)).latest_version == 1
    with pytest.raises(NotFound):
        app.read_prompt(owner, org, pid, created.timestamp - timedelta(microseconds=1))


def test_label_snapshot_takes_the_prefix_of_moves_like_prompt_time_travel(container, clock):
    """Label moves stamped +0 (create), then production -> 1 at +10 and -> 2 at +5 (the clock stepped
    back): as of +7 the prefix ends before the first move, so production pointed nowhere, as
    `read_prompt` says; filtering by timestamp answered v2."""
    app = container.app
    owner, org = _setup(app)
    clock.times = [0, 1, 10, 5]
    clock.calls = count()
    pid = app.create_prompt(owner, org, name="skewed-labels", template="v1 {{x}}", request_id="r").id
    app.revise_prompt(owner, org, pid, base_version=1, request_id="r", template="v2 {{x}}")
    app.move_label(owner, org, pid, "production", 1, "r")
    app.move_label(owner, org, pid, "production", 2, "r")
    container.supervisor.catch_up()
    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    snapshot = lambda s: {r["prompt_id"]: r["to_version"] for r in container.label_history.at(str(org), "production", at(s))}  # noqa: E731

    assert app.read_prompt(owner, org, pid, at(7)).labels == {}
    assert snapshot(7) == {}
    assert app.read_prompt(owner, org, pid, at(12)).labels == {"production": 2}
    assert snapshot(12) == {str(pid): 2}
    assert snapshot(0.5) == {}
