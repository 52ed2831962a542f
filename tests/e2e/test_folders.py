"""Folders over HTTP (prompt model v2, issue 9), on SQLite and Postgres: listing a folder's prompts,
sub-folders with counts, the by-name fetch of folder paths (path segments or URL-encoded), and
renames moving prompts between folders."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.e2e.support import assert_error


@pytest.fixture(scope="module")
def web(module_api):
    return module_api


@pytest.fixture(scope="module")
def owner(web):
    return web.user("folders-owner")


@pytest.fixture
def org(web, owner):
    return open_org(web, owner, "Folders")


def open_org(web, who, name: str) -> str:
    """A new organisation whose labels all move directly. (Organisations may protect `production`
    by default, changes then going through review requests: not what these tests are about.)"""
    org = web.org(who, name)
    got = web.get(f"/v1/orgs/{org}", headers=who.h)
    assert got.status_code == 200, got.text
    if got.json().get("protected_labels"):
        r = web.patch(f"/v1/orgs/{org}", json={"protected_labels": []}, headers=who.h)
        assert r.status_code == 200, r.text
    return org


def url(org, *parts):
    return "/".join([f"/v1/orgs/{org}/prompts", *map(str, parts)])


def create(web, who, org, name, template="T", **body) -> str:
    r = web.post(url(org), json={"name": name, "template": template, **body}, headers=who.h)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def ok(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def folders(web, who, org, parent=None):
    return ok(web.q(f"/v1/orgs/{org}/folders", who, params={} if parent is None else {"parent": parent}))


def listed(web, who, org, **params) -> list[str]:
    return [i["name"] for i in ok(web.q(url(org), who, params=params))["items"]]


TREE = ["top", "other-top", "support/tone", "support/billing/refund", "support/billing/late",
        "support/billing/eu/vat", "sales/pitch", "sales/emea/intro", "sales/emea/follow-up"]


@pytest.fixture
def tree(web, owner, org):
    ids = {name: create(web, owner, org, name) for name in TREE}
    archived = create(web, owner, org, "support/billing/old")
    assert web.post(url(org, archived, "archive"), headers=owner.h).status_code == 200
    ids["support/billing/old"] = archived
    return ids


def test_folder_listing_with_counts(web, owner, org, tree):
    assert folders(web, owner, org) == {"parent": "", "prompts": 2, "folders": [
        {"name": "sales", "path": "sales", "prompts": 3}, {"name": "support", "path": "support", "prompts": 4}]}
    assert folders(web, owner, org, "") == folders(web, owner, org)
    assert folders(web, owner, org, "support") == {"parent": "support", "prompts": 1, "folders": [
        {"name": "billing", "path": "support/billing", "prompts": 3}]}
    assert folders(web, owner, org, "support/billing") == {"parent": "support/billing", "prompts": 2, "folders": [
        {"name": "eu", "path": "support/billing/eu", "prompts": 1}]}
    assert folders(web, owner, org, "support/billing/eu") == {"parent": "support/billing/eu", "prompts": 1,
                                                             "folders": []}
    assert folders(web, owner, org, "sales") == {"parent": "sales", "prompts": 1, "folders": [
        {"name": "emea", "path": "sales/emea", "prompts": 2}]}
    # surrounding slashes are ignored; an unknown folder is simply empty
    assert folders(web, owner, org, "/support/billing/") == folders(web, owner, org, "support/billing")
    assert folders(web, owner, org, "nowhere") == {"parent": "nowhere", "prompts": 0, "folders": []}
    # "sup" is a prefix of "support" but not a folder
    assert folders(web, owner, org, "sup") == {"parent": "sup", "prompts": 0, "folders": []}


def test_list_prompts_of_a_folder(web, owner, org, tree):
    assert listed(web, owner, org, folder="support/billing") == ["support/billing/late", "support/billing/refund"]
    assert listed(web, owner, org, folder="support/billing/") == ["support/billing/late", "support/billing/refund"]
    assert listed(web, owner, org, folder="support") == ["support/tone"]
    assert listed(web, owner, org, folder="") == ["other-top", "top"]
    assert listed(web, owner, org, folder="support/billing", archived="all") == [
        "support/billing/late", "support/billing/old", "support/billing/refund"]
    assert listed(web, owner, org, folder="support/billing", archived="true") == ["support/billing/old"]
    assert listed(web, owner, org, folder="nowhere") == []
    assert len(listed(web, owner, org)) == len(TREE)  # no folder: everything (not archived)
    # folder combines with the other filters and paginates
    page = ok(web.q(url(org), owner, params={"folder": "sales/emea", "limit": 1}))
    assert [i["name"] for i in page["items"]] == ["sales/emea/follow-up"] and page["next_cursor"]
    page2 = ok(web.q(url(org), owner, params={"folder": "sales/emea", "limit": 1, "cursor": page["next_cursor"]}))
    assert [i["name"] for i in page2["items"]] == ["sales/emea/intro"]
    got = ok(web.q(url(org, tree["support/billing/eu/vat"]), owner))
    assert got["folder"] == "support/billing/eu" and got["name"] == "support/billing/eu/vat"
    assert ok(web.q(url(org, tree["top"]), owner))["folder"] == ""


def test_like_wildcards_in_folder_names_are_literal(web, owner, org):
    for name in ("a_b/one", "axb/two", "100%/three", "100x/four", "a_b/deep/five"):
        create(web, owner, org, name)
    assert folders(web, owner, org, "a_b") == {"parent": "a_b", "prompts": 1, "folders": [
        {"name": "deep", "path": "a_b/deep", "prompts": 1}]}
    assert folders(web, owner, org, "100%") == {"parent": "100%", "prompts": 1, "folders": []}
    assert listed(web, owner, org, folder="a_b") == ["a_b/one"]
    assert listed(web, owner, org, folder="100%") == ["100%/three"]
    assert [f["path"] for f in folders(web, owner, org)["folders"]] == ["100%", "100x", "a_b", "axb"]


def test_by_name_takes_the_path_as_segments_or_url_encoded(web, owner, org, tree):
    pid = tree["support/billing/refund"]
    assert web.revise(owner, org, pid, 1, "Refund v2") == 2
    assert web.label(owner, org, pid, "production", 1).status_code == 200
    for path in ("support/billing/refund", "support%2Fbilling%2Frefund", "support%2fbilling%2frefund",
                 "support/billing%2Frefund", "Support/Billing/REFUND"):
        got = ok(web.q(url(org, "by-name", path), owner))
        assert got["prompt_id"] == pid and got["name"] == "support/billing/refund", path
        assert got["version"] == 2 and got["template"] == "Refund v2"
        prod = ok(web.q(url(org, "by-name", path), owner, params={"label": "production"}))
        assert prod["version"] == 1 and prod["template"] == "T", path
        assert ok(web.q(url(org, "by-name", path), owner, params={"version": 1}))["label"] is None
    # spaces and unicode in folder names
    odd = create(web, owner, org, "Équipe support/réponses/remboursement", "R")
    assert ok(web.q(url(org, "by-name", quote("Équipe support/réponses/remboursement")), owner))["prompt_id"] == odd
    assert ok(web.q(url(org, "by-name", quote("Équipe support/réponses/remboursement", safe="")), owner)
              )["prompt_id"] == odd
    # a folder is not a prompt; a partial path is nothing
    for path in ("support/billing", "support%2Fbilling", "billing/refund", "support/billing/refund/x"):
        assert_error(web.q(url(org, "by-name", path), owner), 404, "PROMPT_NOT_FOUND")


def test_rename_moves_a_prompt_between_folders(web, owner, org, tree):
    pid = tree["support/tone"]
    r = web.post(url(org, pid, "rename"), json={"name": "  style / voice /tone "}, headers=owner.h)
    assert r.status_code == 200 and r.json()["name"] == "style/voice/tone", r.text
    assert ok(web.q(url(org, pid), owner))["folder"] == "style/voice"
    assert listed(web, owner, org, folder="support") == []
    assert listed(web, owner, org, folder="style/voice") == ["style/voice/tone"]
    root = {f["name"]: f["prompts"] for f in folders(web, owner, org)["folders"]}
    assert root == {"sales": 3, "style": 1, "support": 3}
    assert folders(web, owner, org, "support")["prompts"] == 0
    # fetches by the old path keep working (alias), in both path forms
    for path in ("support/tone", "support%2Ftone"):
        assert ok(web.q(url(org, "by-name", path), owner))["name"] == "style/voice/tone"
    # moving to the top level
    assert web.post(url(org, pid, "rename"), json={"name": "tone"}, headers=owner.h).status_code == 200
    assert folders(web, owner, org)["prompts"] == 3 and "style" not in {
        f["name"] for f in folders(web, owner, org)["folders"]}
    for bad in ("a//b", "/", "a/../b", "a/./b", ""):
        assert_error(web.post(url(org, pid, "rename"), json={"name": bad}, headers=owner.h), 422, "INVALID_NAME")


def test_folders_are_per_organisation(web, owner, org, tree):
    other = open_org(web, owner, "Another")
    create(web, owner, other, "support/billing/x")
    assert folders(web, owner, other) == {"parent": "", "prompts": 0, "folders": [
        {"name": "support", "path": "support", "prompts": 1}]}
    assert folders(web, owner, org, "support")["folders"] == [
        {"name": "billing", "path": "support/billing", "prompts": 3}]
    assert listed(web, owner, other, folder="support/billing") == ["support/billing/x"]
