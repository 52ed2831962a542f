"""Inputs the API used to accept wrongly, each answered with a clear 4xx now."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error


@pytest.fixture
def owner_org(api):
    owner = api.user("owner")
    return owner, api.org(owner)


def test_a_prompt_id_is_not_a_user(api, owner_org):
    """add_member accepted any aggregate id as a user: a prompt became a phantom member taking a slot."""
    owner, org = owner_org
    pid = api.prompt(owner, org, "not-a-person")
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"user_id": pid, "role": "viewer"}, headers=owner.h),
                 404, "USER_NOT_FOUND")
    assert_error(api.post(f"/v1/orgs/{org}/members", json={"user_id": org, "role": "viewer"}, headers=owner.h),
                 404, "USER_NOT_FOUND")
    members = api.q(f"/v1/orgs/{org}/members", owner).json()["items"]
    assert [m["user_id"] for m in members] == [owner.user_id]
    assert api.get(f"/v1/orgs/{org}", headers=owner.h).json()["usage"]["members"] == 1


def test_label_latest_filters_to_every_prompt(api, owner_org):
    """Every response lists `latest`, but filtering by it returned nothing."""
    owner, org = owner_org
    ids = {api.prompt(owner, org, f"latest-{i}", f"keyword banana {i} {{{{x}}}}") for i in range(3)}
    listed = api.q(f"/v1/orgs/{org}/prompts", owner, params={"label": "latest"}).json()["items"]
    assert {p["id"] for p in listed} == ids
    listed = api.q(f"/v1/orgs/{org}/prompts", owner, params={"label": "LATEST"}).json()["items"]
    assert {p["id"] for p in listed} == ids
    found = api.search(org, owner, {"query": "banana", "mode": "keyword", "label": "latest"}).json()["items"]
    assert {h["prompt_id"] for h in found} == ids
    assert api.q(f"/v1/orgs/{org}/prompts", owner, params={"label": "production"}).json()["items"] == []


@pytest.mark.parametrize("name", ["tab\tname", "new\nline", "carriage\rreturn", "two\n\nlines"])
def test_names_that_could_never_be_fetched_are_refused_at_creation(api, owner_org, name):
    """Names with a tab or newline were created (201) and could never be fetched by name (400)."""
    owner, org = owner_org
    assert_error(api.post(f"/v1/orgs/{org}/prompts", json={"name": name, "template": "t"}, headers=owner.h),
                 422, "INVALID_NAME")
    assert api.q(f"/v1/orgs/{org}/prompts", owner).json()["items"] == []
