"""Prompt commands take the prompt this process last saved from the prompt cache instead of
loading it (application.prompt_cache, adr/0026), and stay exactly as current as a load: a change
committed by another process applies to the next command here, and one committed after a
command's head check fails its save and is retried against the store (no lost update)."""
from __future__ import annotations

import pytest

from domain.errors import Conflict
from tests.support.setup import owner_with_prompt


def _reads_of(app, aggregate_id):
    """Count the event-store reads of one aggregate's events (a repository load or fast-forward)."""
    reads = []
    original = app.recorder.select_events

    def select_events(originator_id, *args, **kwargs):
        if originator_id == aggregate_id:
            reads.append(originator_id)
        return original(originator_id, *args, **kwargs)

    app.recorder.select_events = select_events
    return reads


def test_the_next_command_here_reads_no_events_of_the_prompt(two_apps):
    first, _ = two_apps
    owner, org, prompt = owner_with_prompt(first)
    first.revise_prompt(owner, org, prompt, base_version=1, template="two", request_id="r")
    reads = _reads_of(first, prompt)
    assert first.revise_prompt(owner, org, prompt, base_version=2, template="three", request_id="r").version == 3
    assert first.move_label(owner, org, prompt, "staging", 3, request_id="r").version == 3
    assert first.revise_prompt(owner, org, prompt, base_version=3, template="four", request_id="r").version == 4
    assert reads == []
    assert first.prompt_cache.hits == 3
    stored = first.read_prompt(owner, org, prompt)  # what the store folds is what the commands saw
    assert stored.latest_version == 4 and stored.labels["staging"] == 3 and stored.versions[-1]["template"] == "four"


def test_a_change_made_in_another_process_applies_to_the_next_command_here(two_apps):
    first, second = two_apps
    owner, org, prompt = owner_with_prompt(first)
    first.revise_prompt(owner, org, prompt, base_version=1, template="two", request_id="r")  # cached here at v2
    second.revise_prompt(owner, org, prompt, base_version=2, template="three", request_id="r")
    second.move_label(owner, org, prompt, "staging", 3, request_id="r")
    with pytest.raises(Conflict) as stale:
        first.revise_prompt(owner, org, prompt, base_version=2, template="lost", request_id="r")
    assert stale.value.code == "PROMPT_VERSION_CONFLICT"
    assert first.revise_prompt(owner, org, prompt, base_version=3, template="four", request_id="r").version == 4
    stored = second.read_prompt(owner, org, prompt)
    assert stored.latest_version == 4 and stored.labels["staging"] == 3
    assert [v["template"] for v in stored.versions] == ["one", "two", "three", "four"]


def test_a_change_committed_after_the_commands_head_check_fails_its_save_and_is_retried(two_apps):
    """A request whose head check came before another process's commit uses the entry cached
    before it: the save collides (optimistic concurrency), the retry loads from the store and
    answers what a load would have (here: the base is stale), nothing is lost."""
    first, second = two_apps
    owner, org, prompt = owner_with_prompt(first)
    first.revise_prompt(owner, org, prompt, base_version=1, template="two", request_id="r")
    checked = first.log_head.check()
    second.revise_prompt(owner, org, prompt, base_version=2, template="three", request_id="r")
    with pytest.raises(Conflict) as stale:
        first.revise_prompt(owner, org, prompt, base_version=2, template="lost", request_id="r",
                            checked_head=checked)
    assert stale.value.code == "PROMPT_VERSION_CONFLICT"
    assert [v["template"] for v in second.read_prompt(owner, org, prompt).versions] == ["one", "two", "three"]


def test_a_command_given_its_requests_head_check_does_not_read_the_head_again(two_apps):
    """Over HTTP the org scope's check (made after the request began) is handed to the command."""
    first, _ = two_apps
    owner, org, prompt = owner_with_prompt(first)
    checked = first.log_head.check()
    original, calls = first.log_head.check, []
    first.log_head.check = lambda: calls.append(1) or original()
    first.revise_prompt(owner, org, prompt, base_version=1, template="two", request_id="r", checked_head=checked)
    first.create_prompt(owner, org, name="q", template="q", request_id="r", checked_head=checked)
    assert calls == []
    first.revise_prompt(owner, org, prompt, base_version=2, template="three", request_id="r")
    assert calls == [1]
