"""The copy of a Prompt the aggregate cache hands out per load (`Prompt.__deepcopy__`): its version
entries are shared with the cached prompt (a version is never edited once added), everything else is
copied, so no command run on a copy, saved or failed, changes the cached prompt."""
from __future__ import annotations

import copy
from uuid import UUID

from eventsourcing.application import Application

from domain.prompt import Prompt
from tests.unit.domain_helpers import by

ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
TEMPLATE = "Hello {{name}}, welcome to {{ place }}."


def _prompt(versions: int = 5, collect: bool = True) -> Prompt:
    with by():
        prompt = Prompt.create(UUID("00000000-0000-4000-8000-0000000000d1"), ORG_ID, "greeting", TEMPLATE, None,
                               {"temperature": 0.2, "stop": ["\n"]}, ["a"], "first")
        for n in range(1, versions):
            prompt.revise(n, template=f"{TEMPLATE} ({n})", message=f"v{n + 1}",
                          variables=[{"name": "name", "type": "string"}, {"name": "place"}])
        prompt.move_label("production", 2, 0)
        prompt.move_label("canary", None, None, split=[{"version": 2, "weight": 90}, {"version": 3, "weight": 10}])
    if collect:
        prompt.collect_events()
    return prompt


def _state(prompt: Prompt) -> dict:
    """Everything the prompt holds, copied generically (a dict's deep copy: entries included)."""
    return copy.deepcopy(dict(prompt.__dict__))


def test_copy_has_the_same_state_and_shares_only_version_entries():
    original = _prompt()
    clone = copy.deepcopy(original)
    assert type(clone) is Prompt and clone is not original
    assert _state(clone) == _state(original)
    assert clone.versions is not original.versions
    assert all(a is b for a, b in zip(clone.versions, original.versions))
    for name in ("labels", "splits", "idempotent_revisions"):
        assert getattr(clone, name) is not getattr(original, name)
    assert clone.splits["canary"] is not original.splits["canary"]


def test_commands_on_a_copy_leave_the_original_as_it_was():
    original = _prompt()
    before = _state(original)
    clone = copy.deepcopy(original)
    with by():
        clone.revise(5, template="changed {{x}}", message="v6", model_config={"temperature": 1.0}, tags=["b"],
                     idempotency="tok", request_hash="h")
        clone.move_label("production", 6, 2)
        clone.move_label("canary", None, 2, split=[{"version": 1, "weight": 50}, {"version": 6, "weight": 50}])
        clone.remove_label("canary", None)
        clone.rename("greeting-2")
        clone.archive()
    assert len(clone.collect_events()) == 6
    assert _state(original) == before
    assert original.latest_version == 5 and original.labels == {"production": 2, "canary": 2}


def test_a_failed_command_does_not_taint_the_cached_prompt():
    """The application's aggregate cache hands out copies: a revision that is never saved (the
    command failed after deciding) leaves what the next load sees unchanged."""
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo", "AGGREGATE_CACHE_MAXSIZE": "10",
                           "AGGREGATE_CACHE_FASTFORWARD": "y"})
    prompt = _prompt(collect=False)
    with by():
        app.save(prompt)
        loaded = app.repository.get(prompt.id)
        loaded.revise(5, template="never saved {{x}}", message="lost")
        loaded.versions[0]  # read only: the entries are shared
    again = app.repository.get(prompt.id)
    assert again.latest_version == 5 and again.versions[-1]["message"] == "v5"
    with by():
        again.revise(5, template="saved {{x}}", message="v6")
        app.save(again)
    assert app.repository.get(prompt.id).versions[-1]["message"] == "v6"
    assert len(list(app.events.get(prompt.id))) == 8  # created, 4 revisions, 2 label moves, the saved one
