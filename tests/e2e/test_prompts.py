"""Prompts over HTTP: create, list, read, revise, versions, diff, labels, fetch path, render,
archive, time travel, idempotency, read-your-writes."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest

from domain.values import MAX_NAME, MAX_TEMPLATE
from tests.e2e.support import assert_error


@pytest.fixture
def team(api):
    """An org with one user per role."""
    owner = api.user("owner")
    org = api.org(owner)
    people = {"owner": owner}
    for role in ("admin", "developer", "reviewer", "viewer"):
        people[role] = api.user(role)
        api.add(owner, org, people[role], role)
    return org, people


def url(org, *parts):
    return "/".join([f"/v1/orgs/{org}/prompts", *map(str, parts)])


def test_create_and_read_a_prompt(api, team):
    org, p = team
    r = api.post(url(org), json={"name": "support-reply", "template": "Answer {{ question }} for {{product}}",
                                 "model_config": {"model": "m", "temperature": 0.2}, "tags": ["Support", "email"],
                                 "message": "first"}, headers=p["developer"].h)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["version"] == 1 and created["name"] == "support-reply"
    assert r.headers["x-event-position"] == str(created["position"])
    pid = created["id"]
    got = api.get(url(org, pid), headers=p["viewer"].h, params={"min_position": created["position"]})
    assert got.status_code == 200 and re.fullmatch(rf'"{pid}:1:\d+"', got.headers["etag"]), got.headers
    body = got.json()
    assert body["variables"] == ["question", "product"] and body["tags"] == ["email", "support"]
    assert body["model_config"] == {"model": "m", "temperature": 0.2} and body["labels"] == {"latest": 1}
    assert body["created_at"].endswith(("Z", "+00:00"))
    # header form of min_position
    assert api.get(url(org, pid), headers={**p["viewer"].h, "X-Min-Position": str(created["position"])}
                   ).status_code == 200


def test_create_refusals(api, team):
    org, p = team
    api.prompt(p["developer"], org, "taken")
    cases = [
        ({"name": "TAKEN", "template": "t"}, 409, "PROMPT_NAME_TAKEN"),
        ({"name": "x", "template": "{{a}}", "variables": ["b"]}, 422, "VARIABLES_MISMATCH"),
        ({"name": "x", "template": "   "}, 422, "INVALID_TEMPLATE"),
        ({"name": "x", "template": "t", "tags": ["bad tag"]}, 422, "INVALID_TAGS"),
        ({"name": "x", "template": "t", "unknown": 1}, 422, "VALIDATION_ERROR"),
        ({"name": "x" * (MAX_NAME + 1), "template": "t"}, 422, "VALIDATION_ERROR"),
        ({"name": "x", "template": "t" * (MAX_TEMPLATE + 1)}, 422, "VALIDATION_ERROR"),
        ({"name": "x", "template": "t", "tags": [f"t{i}" for i in range(33)]}, 422, "VALIDATION_ERROR"),
        ({"name": "x", "template": "t", "model_config": {"k": "v" * 20_000}}, 422, "INVALID_MODEL_CONFIG"),
        ({"name": "x", "template": "t", "model_config": [1]}, 422, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        assert_error(api.post(url(org), json=body, headers=p["developer"].h), status, code)
    for role in ("reviewer", "viewer"):
        assert_error(api.post(url(org), json={"name": "x", "template": "t"}, headers=p[role].h), 403,
                     "PERMISSION_DENIED")


def test_list_filters_sorting_and_cursor_pagination(api, team):
    org, p = team
    dev = p["developer"]
    ids = {}
    for i, name in enumerate(["alpha", "beta", "gamma", "delta", "alpine"]):
        ids[name] = api.prompt(dev, org, name, tags=["even"] if i % 2 == 0 else ["odd"])
    api.label(dev, org, ids["beta"], "staging", 1)
    api.post(url(org, ids["delta"], "archive"), headers=dev.h)

    def names(**params):
        r = api.q(url(org), p["viewer"], params=params)
        assert r.status_code == 200, r.text
        return [i["name"] for i in r.json()["items"]]

    assert names() == ["alpha", "alpine", "beta", "gamma"]
    assert names(sort="-name") == ["gamma", "beta", "alpine", "alpha"]
    assert names(tag="even") == ["alpha", "alpine", "gamma"]
    assert names(label="staging") == ["beta"]
    assert names(name_prefix="al") == ["alpha", "alpine"]
    assert names(archived="true") == ["delta"]
    assert len(names(archived="all")) == 5
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "sort": "created_at", **({"cursor": cursor} if cursor else {})}
        page = api.q(url(org), p["viewer"], params=params).json()
        seen += [i["name"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["alpha", "beta", "gamma", "alpine"]
    assert_error(api.q(url(org), p["viewer"], params={"sort": "evil"}), 400, "INVALID_SORT")
    assert_error(api.q(url(org), p["viewer"], params={"cursor": "garbage"}), 400, "INVALID_CURSOR")
    assert_error(api.q(url(org), p["viewer"], params={"limit": 201}), 400, "INVALID_PARAMETER")
    assert_error(api.q(url(org), p["viewer"], params={"archived": "maybe"}), 400, "INVALID_PARAMETER")


def test_revise_with_base_version_and_if_match(api, team):
    org, p = team
    dev = p["developer"]
    pid = api.prompt(dev, org, "p", "v1 {{x}}")
    assert api.revise(dev, org, pid, 1, "v2 {{x}}", message="second") == 2
    body = assert_error(api.post(url(org, pid, "versions"), json={"base_version": 1, "template": "stale"},
                                 headers=dev.h), 409, "PROMPT_VERSION_CONFLICT")
    assert body["error"]["details"]["current_version"] == 2
    etag = api.q(url(org, pid), dev).headers["etag"]
    r = api.post(url(org, pid, "versions"), json={"template": "v3 {{x}}"}, headers={**dev.h, "If-Match": etag})
    assert r.status_code == 201 and r.json()["version"] == 3 and r.headers["etag"] == f'"{pid}:3"'
    body = assert_error(api.post(url(org, pid, "versions"), json={"template": "v4"},
                                 headers={**dev.h, "If-Match": etag}), 412, "PRECONDITION_FAILED")
    assert body["error"]["details"]["current_version"] == 3
    assert_error(api.post(url(org, pid, "versions"), json={"template": "v4"}, headers={**dev.h, "If-Match": '"zz"'}),
                 400, "INVALID_PARAMETER")
    assert_error(api.post(url(org, pid, "versions"), json={"template": "v4"}, headers=dev.h), 422,
                 "BASE_VERSION_REQUIRED")
    assert_error(api.post(url(org, pid, "versions"), json={"base_version": 3, "template": "x"},
                          headers=p["viewer"].h), 403, "PERMISSION_DENIED")
    # fields left out are inherited
    api.revise(dev, org, pid, 3, "v4 {{x}}", tags=["kept"])
    assert api.revise(dev, org, pid, 4, "v5 {{x}}") == 5
    assert api.q(url(org, pid, "versions", 5), dev).json()["tags"] == ["kept"]


def test_versions_list_get_and_diff(api, team):
    org, p = team
    dev = p["developer"]
    pid = api.prompt(dev, org, "p", "line one\nline {{x}}\n", model_config={"t": 1})
    api.revise(dev, org, pid, 1, "line one\nline {{x}} changed\n", model_config={"t": 2}, tags=["new"])
    api.revise(dev, org, pid, 2, "three {{x}}")
    page = api.q(url(org, pid, "versions"), p["viewer"], params={"limit": 2}).json()
    assert [v["version"] for v in page["items"]] == [1, 2] and page["next_after"] == 2
    page = api.q(url(org, pid, "versions"), p["viewer"], params={"after": 2}).json()
    assert [v["version"] for v in page["items"]] == [3] and page["next_after"] is None
    one = api.q(url(org, pid, "versions", 1), p["viewer"])
    assert one.json()["template"].startswith("line one") and one.headers["etag"] == f'"{pid}:1"'
    assert one.json()["author"] == f"user:{dev.user_id}"
    r = api.get(url(org, pid, "versions", 1), headers={**p["viewer"].h, "If-None-Match": one.headers["etag"]})
    assert r.status_code == 304 and r.content == b""
    assert_error(api.q(url(org, pid, "versions", 9), p["viewer"]), 404, "VERSION_NOT_FOUND")
    assert_error(api.q(url(org, pid, "versions", "abc"), p["viewer"]), 404, "VERSION_NOT_FOUND")
    d = api.q(url(org, pid, "diff"), p["viewer"], params={"from": 1, "to": 2}).json()
    assert "-line {{x}}\n+line {{x}} changed\n" in d["template_diff"] and d["template_diff"].startswith("--- v1")
    assert d["changes"] == {"model_config": {"from": {"t": 1}, "to": {"t": 2}}, "tags": {"from": [], "to": ["new"]}}
    assert api.q(url(org, pid, "diff"), p["viewer"], params={"from": 2, "to": 2}).json()["template_diff"] == ""
    assert_error(api.q(url(org, pid, "diff"), p["viewer"], params={"from": 1, "to": 7}), 404, "VERSION_NOT_FOUND")
    assert_error(api.q(url(org, pid, "diff"), p["viewer"], params={"from": 1}), 400, "INVALID_PARAMETER")


def test_labels_permissions_compare_and_set_and_history(api, team):
    org, p = team
    dev, reviewer = p["developer"], p["reviewer"]
    pid = api.prompt(dev, org, "p", "v1")
    api.revise(dev, org, pid, 1, "v2")
    # production needs prompts:promote (reviewer and up); developers move other labels
    assert_error(api.label(dev, org, pid, "production", 1), 403, "PERMISSION_DENIED")
    assert_error(api.label(p["viewer"], org, pid, "staging", 1), 403, "PERMISSION_DENIED")
    assert_error(api.label(reviewer, org, pid, "staging", 1), 403, "PERMISSION_DENIED")
    assert api.label(dev, org, pid, "staging", 1).status_code == 200
    r = api.label(reviewer, org, pid, "Production", 1, expected_version=0)
    assert r.status_code == 200 and r.json()["label"] == "production"
    body = assert_error(api.label(reviewer, org, pid, "production", 2, expected_version=0), 409, "LABEL_CONFLICT")
    assert body["error"]["details"]["current_version"] == 1
    assert api.label(p["admin"], org, pid, "production", 2, expected_version=1).status_code == 200
    same = api.label(reviewer, org, pid, "production", 2)
    assert same.status_code == 200 and same.json()["position"] > 0  # no change, no event
    assert_error(api.label(dev, org, pid, "latest", 1), 422, "LABEL_RESERVED")
    assert_error(api.label(dev, org, pid, "bad label!", 1), 422, "INVALID_LABEL")
    assert_error(api.label(dev, org, pid, "staging", 7), 404, "VERSION_NOT_FOUND")
    assert_error(api.put(url(org, pid, "labels", "staging"), json={"version": "two"}, headers=dev.h), 422)
    # remove (with and without compare-and-set)
    assert_error(api.delete(url(org, pid, "labels", "staging"), params={"expected_version": 2}, headers=dev.h),
                 409, "LABEL_CONFLICT")
    assert api.delete(url(org, pid, "labels", "staging"), params={"expected_version": 1},
                      headers=dev.h).status_code == 200
    assert_error(api.delete(url(org, pid, "labels", "staging"), headers=dev.h), 404, "LABEL_NOT_FOUND")
    assert_error(api.delete(url(org, pid, "labels", "production"), headers=dev.h), 403, "PERMISSION_DENIED")
    labels = api.q(url(org, pid), p["viewer"]).json()["labels"]
    assert labels == {"production": 2, "latest": 2}
    history = api.q(url(org, pid, "labels", "history"), p["viewer"]).json()["items"]
    assert [(h["label"], h["from_version"], h["to_version"]) for h in history] == [
        ("staging", None, 1), ("production", None, 1), ("production", 1, 2), ("staging", 1, None)]
    assert history[1]["actor"] == f"user:{reviewer.user_id}"
    only = api.q(url(org, pid, "labels", "history"), p["viewer"], params={"label": "production"}).json()["items"]
    assert len(only) == 2


def test_prompt_etag_changes_with_labels_and_archiving(api, team):
    """The validator of GET .../prompts/{id} covers the whole representation: moving a label or
    archiving changes the body, so it changes the ETag (it used to stay "<id>:<version>"). A revision's
    If-Match still compares the version only."""
    org, p = team
    pid = api.prompt(p["owner"], org, "etag-prompt", "v1 {{x}}")
    first = api.q(url(org, pid), p["viewer"]).headers["etag"]
    assert api.label(p["owner"], org, pid, "staging", 1).status_code == 200
    labelled = api.q(url(org, pid), p["viewer"])
    assert labelled.json()["labels"]["staging"] == 1 and labelled.headers["etag"] != first
    assert api.post(url(org, pid, "archive"), headers=p["owner"].h).status_code == 200
    archived = api.q(url(org, pid), p["viewer"])
    assert archived.json()["archived"] and archived.headers["etag"] not in (first, labelled.headers["etag"])
    assert api.post(url(org, pid, "restore"), headers=p["owner"].h).status_code == 200
    r = api.post(url(org, pid, "versions"), json={"template": "v2 {{x}}"}, headers={**p["owner"].h, "If-Match": first})
    assert r.status_code == 201 and r.json()["version"] == 2  # labels moved since: the version is what counts


def test_fetch_by_name_label_version_etag(api, team):
    org, p = team
    dev, reviewer = p["developer"], p["reviewer"]
    pid = api.prompt(dev, org, "Support Reply", "v1 {{q}}")
    api.revise(dev, org, pid, 1, "v2 {{q}}")
    api.label(reviewer, org, pid, "production", 1)
    by_name = url(org, "by-name", "support reply")  # names match case-insensitively
    r = api.q(by_name, p["viewer"], params={"label": "production"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["template"] == "v1 {{q}}" and r.json()["label"] == "production"
    assert r.headers["etag"] == f'"{pid}:1"'
    r304 = api.get(by_name, params={"label": "production"}, headers={**p["viewer"].h, "If-None-Match": r.headers["etag"]})
    assert r304.status_code == 304 and r304.headers["etag"] == r.headers["etag"]
    latest = api.q(by_name, p["viewer"])
    assert latest.json()["version"] == 2 and latest.json()["label"] == "latest"
    assert api.q(by_name, p["viewer"], params={"version": 1}).json()["label"] is None
    # after a move the old ETag no longer matches
    api.label(reviewer, org, pid, "production", 2)
    moved = api.q(by_name, p["viewer"], params={"label": "production"},
                  headers={"If-None-Match": r.headers["etag"]})
    assert moved.status_code == 200 and moved.json()["version"] == 2
    assert_error(api.q(by_name, p["viewer"], params={"label": "canary"}), 404, "LABEL_NOT_FOUND")
    assert_error(api.q(by_name, p["viewer"], params={"version": 3}), 404, "VERSION_NOT_FOUND")
    assert_error(api.q(by_name, p["viewer"], params={"version": 1, "label": "production"}), 400, "INVALID_PARAMETER")
    assert_error(api.q(url(org, "by-name", "missing"), p["viewer"]), 404, "PROMPT_NOT_FOUND")


def test_render(api, team):
    org, p = team
    pid = api.prompt(p["developer"], org, "p", "Hi {{name}}, you are {{age}}.")
    r = api.post(url(org, pid, "render"), json={"variables": {"name": "Ada", "age": 36}}, headers=p["viewer"].h)
    assert r.status_code == 200 and r.json() == {"prompt_id": pid, "version": 1, "type": "text",
                                                 "text": "Hi Ada, you are 36.", "messages": None, "dependencies": []}
    body = assert_error(api.post(url(org, pid, "render"), json={"variables": {"name": "Ada", "extra": 1}},
                                 headers=p["viewer"].h), 422, "RENDER_VARIABLES_MISMATCH")
    details = body["error"]["details"]
    assert details["missing"] == ["age"] and details["unknown"] == ["extra"] and len(details["problems"]) == 2
    # values may be any JSON now (sections iterate lists and objects); a plain template prints them
    nested = api.post(url(org, pid, "render"), json={"variables": {"name": {"nested": 1}, "age": 1}}, headers=p["viewer"].h)
    assert nested.status_code == 200, nested.text
    assert_error(api.post(url(org, pid, "render"), json={"variables": {}, "label": "production"},
                          headers=p["viewer"].h), 404, "LABEL_NOT_FOUND")
    big = api.prompt(p["developer"], org, "big", "{{a}}" * 2000)
    assert_error(api.post(url(org, big, "render"), json={"variables": {"a": "x" * 1000}}, headers=p["viewer"].h),
                 422, "RENDER_TOO_LARGE")


def test_archive_and_restore(api, team):
    org, p = team
    dev = p["developer"]
    pid = api.prompt(dev, org, "p")
    r = api.post(url(org, pid, "archive"), headers=dev.h)
    assert r.status_code == 200 and r.json()["archived"] is True
    assert_error(api.post(url(org, pid, "archive"), headers=dev.h), 409, "PROMPT_ARCHIVED")
    assert_error(api.post(url(org, pid, "versions"), json={"base_version": 1, "template": "x"}, headers=dev.h),
                 409, "PROMPT_ARCHIVED")
    assert api.q(url(org, pid), dev).json()["archived"] is True
    assert_error(api.post(url(org, pid, "restore"), headers=p["viewer"].h), 403, "PERMISSION_DENIED")
    assert api.post(url(org, pid, "restore"), headers=dev.h).json()["archived"] is False
    assert_error(api.post(url(org, pid, "restore"), headers=dev.h), 409, "PROMPT_NOT_ARCHIVED")


def test_time_travel(api, team):
    org, p = team
    dev, reviewer = p["developer"], p["reviewer"]
    before_anything = datetime.now(timezone.utc)
    time.sleep(0.01)
    pid = api.prompt(dev, org, "tt", "one")
    api.label(reviewer, org, pid, "production", 1)
    time.sleep(0.01)
    t1 = datetime.now(timezone.utc)
    time.sleep(0.01)
    api.revise(dev, org, pid, 1, "two")
    api.label(reviewer, org, pid, "production", 2)
    then = api.get(url(org, pid), params={"as_of": t1.isoformat()}, headers=p["viewer"].h)
    assert then.status_code == 200, then.text
    assert then.json()["latest_version"] == 1 and then.json()["labels"] == {"production": 1, "latest": 1}
    assert then.json()["template"] == "one" and then.json()["as_of"] is not None
    now = api.get(url(org, pid), params={"as_of": datetime.now(timezone.utc).isoformat()}, headers=p["viewer"].h)
    assert now.json()["labels"] == {"production": 2, "latest": 2}
    fetch = api.get(url(org, "by-name", "tt"), params={"label": "production", "as_of": t1.isoformat()},
                    headers=p["viewer"].h)
    assert fetch.status_code == 200 and fetch.json()["version"] == 1 and fetch.json()["template"] == "one"
    z = t1.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert api.get(url(org, "by-name", "tt"), params={"label": "production", "as_of": z},
                   headers=p["viewer"].h).json()["version"] == 1
    assert_error(api.get(url(org, pid), params={"as_of": before_anything.isoformat()}, headers=p["viewer"].h),
                 404, "PROMPT_NOT_FOUND")
    for bad in ("yesterday", "2025-01-01T00:00:00", "0001-01-01T00:00:00+01:00"):
        assert_error(api.get(url(org, pid), params={"as_of": bad}, headers=p["viewer"].h), 400, "INVALID_TIMESTAMP")


def test_idempotent_prompt_creation(api, team):
    org, p = team
    h = {**p["developer"].h, "Idempotency-Key": "create-greet"}
    body = {"name": "greet", "template": "Hi {{n}}"}
    first = api.post(url(org), json=body, headers=h)
    again = api.post(url(org), json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotency-replayed"] == "true"
    assert {k: v for k, v in again.json().items() if k != "position"} == \
        {k: v for k, v in first.json().items() if k != "position"}
    assert_error(api.post(url(org), json={**body, "template": "Yo {{n}}"}, headers=h), 409, "IDEMPOTENCY_KEY_REUSED")
    assert len(api.q(url(org), p["developer"]).json()["items"]) == 1


def test_read_your_writes_bounds(api_factory):
    api = api_factory(inprocess_projections=False, query_wait_seconds=0.2)  # nothing drives the projections
    owner = api.user("owner")
    org = api.org(owner)
    pid = api.prompt(owner, org, "p")
    r = api.get(url(org, pid), headers=owner.h, params={"min_position": api.position})
    assert_error(r, 503, "READ_MODEL_LAGGING")
    assert r.headers["retry-after"] == "1"
    assert_error(api.get(url(org, pid), headers={**owner.h, "X-Min-Position": "abc"}), 400, "INVALID_PARAMETER")
    assert_error(api.get(url(org, pid), headers=owner.h, params={"min_position": 10**9}), 400, "INVALID_MIN_POSITION")
    api.container.supervisor.catch_up()
    assert api.get(url(org, pid), headers=owner.h, params={"min_position": api.position}).status_code == 200


def test_idempotent_revision_replays_instead_of_conflicting(api):
    owner = api.user("owner")
    org = api.org(owner)
    prompt = api.prompt(owner, org, "idem-rev", "Hello {{name}}")
    body = {"base_version": 1, "template": "Hi {{name}}", "message": "shorter"}
    headers = {**owner.h, "Idempotency-Key": "rev-1"}
    first = api.post(f"/v1/orgs/{org}/prompts/{prompt}/versions", json=body, headers=headers)
    again = api.post(f"/v1/orgs/{org}/prompts/{prompt}/versions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.headers["Idempotency-Replayed"] == "true" and "Idempotency-Replayed" not in first.headers
    assert again.json()["version"] == first.json()["version"] == 2
    other = api.post(f"/v1/orgs/{org}/prompts/{prompt}/versions", json={**body, "message": "else"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    stale = api.post(f"/v1/orgs/{org}/prompts/{prompt}/versions", json=body, headers=owner.h)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "PROMPT_VERSION_CONFLICT"
    versions = api.q(f"/v1/orgs/{org}/prompts/{prompt}/versions", owner).json()
    assert [v["version"] for v in versions["items"]] == [1, 2]
