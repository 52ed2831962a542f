"""Small worlds the application tests start from."""
from __future__ import annotations

from uuid import UUID

from application import Principal


def owner_with_prompt(app, *, name: str = "p", template: str = "one") -> tuple[Principal, UUID, UUID]:
    """A registered user, the organisation they own, and one prompt in it: (owner, org id, prompt id)."""
    owner_id, _ = app.register_user("owner@example.com", "correct horse battery", "Owner", "r")
    owner = Principal.user(owner_id)
    org = app.create_organisation(owner, "Team", "r").id
    prompt = app.create_prompt(owner, org, name=name, template=template, request_id="r").id
    return owner, org, prompt
