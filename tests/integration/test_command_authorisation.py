"""Prompt commands authorise from the access cache after a fresh read of the log head
(BaseApp.authorise, adr/0020): a demotion or removal committed by ANOTHER process applies to the
very next command in this one (to a user, and to the keys the user issued), with no request in
between to refresh the cache."""
from __future__ import annotations

import pytest

from application import Principal
from domain.errors import Forbidden, NotFound

pytestmark = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)],
                                     indirect=True)


def _team(app):
    owner_id, _ = app.register_user("owner@example.com", "correct horse battery", "O", "r")
    dev_id, _ = app.register_user("dev@example.com", "correct horse battery", "D", "r")
    owner, dev = Principal.user(owner_id), Principal.user(dev_id)
    org = app.create_organisation(owner, "Team", "r").id
    app.add_member(owner, org, "developer", "r", user_id=dev_id)
    prompt = app.create_prompt(dev, org, name="p", template="one", request_id="r").id
    return owner, dev, org, prompt


def _warm(app, principal, org, prompt, version: int) -> int:
    """A command that passes in this process: its caches now hold the organisation (and key)."""
    app.revise_prompt(principal, org, prompt, base_version=version, template=f"v{version + 1}", request_id="r")
    return version + 1


def test_a_demotion_in_another_process_applies_to_the_next_command_here(two_apps):
    first, second = two_apps
    owner, dev, org, prompt = _team(first)
    _warm(first, dev, org, prompt, 1)
    second.change_member_role(owner, org, dev.user_id, "viewer", "r")
    with pytest.raises(Forbidden):
        first.revise_prompt(dev, org, prompt, base_version=2, template="no", request_id="r")
    with pytest.raises(Forbidden):
        first.create_prompt(dev, org, name="q", template="no", request_id="r")


def test_a_removal_in_another_process_applies_to_the_next_command_here(two_apps):
    first, second = two_apps
    owner, dev, org, prompt = _team(first)
    _warm(first, dev, org, prompt, 1)
    second.remove_member(owner, org, dev.user_id, "r")
    with pytest.raises(NotFound):
        first.move_label(dev, org, prompt, "staging", 2, request_id="r")


def test_a_key_is_narrowed_here_when_its_issuer_is_demoted_in_another_process(two_apps):
    """(The key's own revocation is checked where the raw key is authenticated, on every request:
    tests/e2e/test_api_key_issuer.py.)"""
    first, second = two_apps
    owner, dev, org, prompt = _team(first)
    first.change_member_role(owner, org, dev.user_id, "admin", "r")  # admins issue keys
    issued = first.issue_api_key(dev, org, "ci", ["prompts:read", "prompts:write"], "r")
    key = Principal.api_key(issued.id, org, ["prompts:read", "prompts:write"], dev.actor)
    _warm(first, key, org, prompt, 1)
    second.change_member_role(owner, org, dev.user_id, "viewer", "r")
    with pytest.raises(Forbidden):
        first.revise_prompt(key, org, prompt, base_version=2, template="no", request_id="r")
