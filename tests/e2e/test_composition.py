"""Composition over HTTP (prompt model v2, issue 9), on SQLite and Postgres: includes by label,
version and folder path, the composed by-name fetch and its ETag, time travel of every dependency,
cycles, depth, missing dependencies (at write and at read), tenancy, rename aliases, dependents."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest

from tests.e2e.support import assert_error


# -- fixtures and helpers -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def web(module_api):
    return module_api


@pytest.fixture(scope="module")
def alice(web):
    return web.user("comp-alice")


@pytest.fixture(scope="module")
def bob(web):
    """Owner of another organisation (the tenancy tests)."""
    return web.user("comp-bob")


@pytest.fixture
def org(web, alice):
    return open_org(web, alice, "Composition")


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


def create(web, who, org, name, template=None, **body) -> str:
    payload = {"name": name, **body}
    if template is not None:
        payload["template"] = template
    r = web.post(url(org), json=payload, headers=who.h)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def revise(web, who, org, pid, base, **body) -> int:
    r = web.post(url(org, pid, "versions"), json={"base_version": base, **body}, headers=who.h)
    assert r.status_code == 201, r.text
    return r.json()["version"]


def label(web, who, org, pid, name, version):
    r = web.label(who, org, pid, name, version)
    assert r.status_code == 200, r.text


def unlabel(web, who, org, pid, name):
    r = web.delete(url(org, pid, "labels", name), headers=who.h)
    assert r.status_code == 200, r.text


def published(web, who, org, name, template, **body) -> str:
    """A prompt with production -> v1."""
    pid = create(web, who, org, name, template, **body)
    label(web, who, org, pid, "production", 1)
    return pid


def fetch(web, who, org, name, headers=None, **params):
    return web.q(url(org, "by-name", name), who, params=params, headers=headers or {})


def render(web, who, org, pid, params=None, **body):
    return web.post(url(org, pid, "render"), json=body, params=params or {}, headers=who.h)


def ok(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def dep(name, pid, version, via):
    return {"name": name, "prompt_id": pid, "version": version, "label": via}


def msg(role, text):
    return {"role": role, "content": text, "type": None, "name": None}


def moment() -> str:
    """A moment strictly between the writes before and after it."""
    time.sleep(0.02)
    at = datetime.now(timezone.utc).isoformat()
    time.sleep(0.02)
    return at


# -- include forms ----------------------------------------------------------------------------------
def test_includes_by_production_label_and_version_with_folder_paths(web, alice, org):
    tone = create(web, alice, org, "shared/style/tone", "kind {{who}}")
    assert revise(web, alice, org, tone, 1, template="firm {{who}}") == 2
    label(web, alice, org, tone, "production", 1)
    label(web, alice, org, tone, "staging", 2)
    template = "A {{> shared/style/tone}} | B {{> shared/style/tone@staging}} | C {{> shared/style/tone#2}} | {{q}}"
    pid = create(web, alice, org, "support/reply", template)

    got = ok(fetch(web, alice, org, "support/reply"))
    assert got["template"] == "A kind {{who}} | B firm {{who}} | C firm {{who}} | {{q}}"
    assert got["resolved"] is True and got["variables"] == ["who", "q"]
    assert got["dependencies"] == [dep("shared/style/tone", tone, 1, "production"),
                                   dep("shared/style/tone", tone, 2, "staging"),
                                   dep("shared/style/tone", tone, 2, None)]
    raw = ok(fetch(web, alice, org, "support/reply", resolve="false"))
    assert raw["template"] == template and raw["resolved"] is False and raw["dependencies"] == []
    assert raw["variables"] == ["q"]
    # the prompt's own reads show the raw content
    assert ok(web.q(url(org, pid), alice))["template"] == template
    assert ok(web.q(url(org, pid, "versions", 1), alice))["template"] == template
    out = ok(render(web, alice, org, pid, variables={"who": "Ann", "q": "?"}))
    assert out["text"] == "A kind Ann | B firm Ann | C firm Ann | ?"
    assert out["dependencies"] == got["dependencies"]
    # `@latest` follows the newest version
    assert revise(web, alice, org, tone, 2, template="newest {{who}}") == 3
    latest = create(web, alice, org, "l", "{{> shared/style/tone@latest}}")
    assert ok(fetch(web, alice, org, "l"))["dependencies"] == [dep("shared/style/tone", tone, 3, "latest")]
    assert ok(render(web, alice, org, latest, variables={"who": "x"}))["text"] == "newest x"


def test_dependency_schema_merges_into_the_composed_variables(web, alice, org):
    published(web, alice, org, "sig", "-- {{agent}} ({{years}} yrs)",
              variables=[{"name": "agent"}, {"name": "years", "type": "number", "required": False, "default": 5}])
    pid = create(web, alice, org, "mail", "Dear {{customer}},\n{{> sig}}", variables=[{"name": "customer"}])
    got = ok(fetch(web, alice, org, "mail"))
    assert got["variables"] == ["customer", "agent", "years"]
    assert [(v["name"], v["type"], v["required"], v["default"]) for v in got["variable_schema"]] == [
        ("customer", "string", True, None), ("agent", "string", True, None), ("years", "number", False, 5)]
    assert ok(render(web, alice, org, pid, variables={"customer": "C", "agent": "A"}))["text"] == "Dear C,\n-- A (5 yrs)"
    details = assert_error(render(web, alice, org, pid, variables={"customer": "C", "years": "many"}), 422,
                           "RENDER_VARIABLES_MISMATCH")["error"]["details"]
    assert {(p["variable"], p["problem"]) for p in details["problems"]} == {("agent", "missing"), ("years", "wrong_type")}
    # the parent cannot declare a dependency's variable as its own
    assert_error(web.post(url(org), json={"name": "m2", "template": "{{> sig}}", "variables": [{"name": "agent"}]},
                          headers=alice.h), 422, "VARIABLES_MISMATCH")


def test_a_chat_prompt_cannot_be_included(web, alice, org):
    chat = create(web, alice, org, "chat", type="chat", messages=[{"role": "user", "content": "hi"}])
    label(web, alice, org, chat, "production", 1)
    err = assert_error(web.post(url(org), json={"name": "t", "template": "x {{> chat}}"}, headers=alice.h), 422,
                       "COMPOSITION_TYPE_MISMATCH")
    assert err["error"]["details"]["type"] == "chat"


def test_chat_render_resolves_includes_in_messages(web, alice, org):
    tone = published(web, alice, org, "tone", "Be kind to {{who}}.")
    pid = create(web, alice, org, "chat", type="chat", messages=[
        {"role": "system", "content": "Rules: {{> tone}}"}, {"type": "placeholder", "name": "h"},
        {"role": "user", "content": "{{q}}"}])
    out = ok(render(web, alice, org, pid, variables={"who": "all", "q": "Q"}, placeholders={"h": []}))
    assert out["messages"] == [msg("system", "Rules: Be kind to all."), msg("user", "Q")]
    assert out["dependencies"] == [dep("tone", tone, 1, "production")]
    then = ok(fetch(web, alice, org, "chat", as_of=datetime.now(timezone.utc).isoformat()))
    assert then["messages"][0] == msg("system", "Rules: Be kind to {{who}}.")
    assert then["dependencies"] == [dep("tone", tone, 1, "production")]


def test_chat_by_name_fetch_is_composed_and_its_etag_follows_dependencies(web, alice, org):
    tone = published(web, alice, org, "tone", "Be kind.")
    create(web, alice, org, "chat", type="chat", messages=[{"role": "system", "content": "Rules: {{> tone}}"}])
    first = fetch(web, alice, org, "chat")
    got = ok(first)
    assert got["messages"] == [msg("system", "Rules: Be kind.")]
    assert got["dependencies"] == [dep("tone", tone, 1, "production")]
    revise(web, alice, org, tone, 1, template="Be firm.")
    label(web, alice, org, tone, "production", 2)
    again = fetch(web, alice, org, "chat", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 200 and again.json()["messages"] == [msg("system", "Rules: Be firm.")]


def test_chat_includes_are_checked_at_write_time(web, alice, org):
    r = web.post(url(org), json={"name": "chat", "type": "chat",
                                 "messages": [{"role": "system", "content": "{{> ghost}}"}]}, headers=alice.h)
    assert_error(r, 422, "DEPENDENCY_NOT_FOUND")


# -- time travel --------------------------------------------------------------------------------------
def test_time_travel_resolves_every_dependency_as_of_that_moment(web, alice, org):
    d = published(web, alice, org, "shared/d", "D one says {{x}}")
    p = create(web, alice, org, "p", "P[{{> shared/d}}]")
    label(web, alice, org, p, "production", 1)
    t1 = moment()
    assert revise(web, alice, org, d, 1, template="D two shouts {{x}}") == 2
    label(web, alice, org, d, "production", 2)

    then = ok(fetch(web, alice, org, "p", as_of=t1))
    assert then["template"] == "P[D one says {{x}}]" and then["as_of"] is not None
    assert then["dependencies"] == [dep("shared/d", d, 1, "production")]
    assert ok(fetch(web, alice, org, "p", as_of=t1, label="production"))["template"] == "P[D one says {{x}}]"
    now = ok(fetch(web, alice, org, "p"))
    assert now["template"] == "P[D two shouts {{x}}]"
    assert now["dependencies"] == [dep("shared/d", d, 2, "production")]
    assert ok(fetch(web, alice, org, "p", as_of=datetime.now(timezone.utc).isoformat()))["template"] == now["template"]
    # render follows the same clock
    assert ok(render(web, alice, org, p, {"as_of": t1}, variables={"x": "1"}))["text"] == "P[D one says 1]"
    assert ok(render(web, alice, org, p, {"as_of": t1}, variables={"x": "1"}))["dependencies"] == then["dependencies"]
    assert ok(render(web, alice, org, p, variables={"x": "1"}))["text"] == "P[D two shouts 1]"
    # and nested dependencies too: M includes D; Q includes M
    m = published(web, alice, org, "m", "M<{{> shared/d}}>")
    create(web, alice, org, "q", "Q{{> m}}")
    t2 = moment()
    label(web, alice, org, d, "production", 1)
    assert revise(web, alice, org, m, 1, template="M2<{{> shared/d#2}}>") == 2
    label(web, alice, org, m, "production", 2)
    assert ok(fetch(web, alice, org, "q", as_of=t2))["template"] == "QM<D two shouts {{x}}>"
    assert ok(fetch(web, alice, org, "q", as_of=t2))["dependencies"] == [dep("m", m, 1, "production"),
                                                                       dep("shared/d", d, 2, "production")]
    assert ok(fetch(web, alice, org, "q"))["template"] == "QM2<D two shouts {{x}}>"
    assert ok(fetch(web, alice, org, "q"))["dependencies"] == [dep("m", m, 2, "production"), dep("shared/d", d, 2, None)]
    # before P existed: not found
    assert_error(fetch(web, alice, org, "q", as_of=t1), 404, "PROMPT_NOT_FOUND")


# -- ETag of the composed fetch --------------------------------------------------------------------
def test_by_name_etag_changes_when_a_dependency_label_moves(web, alice, org):
    d = published(web, alice, org, "d", "one")
    create(web, alice, org, "p", "P {{> d}}")
    first = fetch(web, alice, org, "p")
    assert ok(first)["template"] == "P one"
    e1 = first.headers["etag"]
    cached = fetch(web, alice, org, "p", headers={"If-None-Match": e1})
    assert cached.status_code == 304 and cached.headers["etag"] == e1 and cached.content == b""

    assert revise(web, alice, org, d, 1, template="two") == 2
    # a new version nobody's label points at changes nothing
    assert fetch(web, alice, org, "p", headers={"If-None-Match": e1}).status_code == 304
    label(web, alice, org, d, "production", 2)
    moved = fetch(web, alice, org, "p", headers={"If-None-Match": e1})
    assert moved.status_code == 200, moved.headers
    assert moved.json()["template"] == "P two"
    assert moved.json()["dependencies"] == [dep("d", d, 2, "production")]
    e2 = moved.headers["etag"]
    assert e2 != e1
    assert fetch(web, alice, org, "p", headers={"If-None-Match": e2}).status_code == 304
    # and back: v1 again is again the first representation
    label(web, alice, org, d, "production", 1)
    back = fetch(web, alice, org, "p", headers={"If-None-Match": e2})
    assert back.status_code == 200 and back.json()["template"] == "P one"
    # the raw form does not depend on the dependencies: its validator is its own
    raw = fetch(web, alice, org, "p", resolve="false")
    assert raw.headers["etag"] not in (e1, e2)
    assert fetch(web, alice, org, "p", resolve="false", headers={"If-None-Match": e1}).status_code == 200
    assert fetch(web, alice, org, "p", resolve="false",
                 headers={"If-None-Match": raw.headers["etag"]}).status_code == 304


def test_by_name_etag_changes_when_a_transitive_dependency_moves(web, alice, org):
    d = published(web, alice, org, "d", "one")
    published(web, alice, org, "mid", "mid({{> d}})")
    create(web, alice, org, "p", "P {{> mid}}")
    e1 = fetch(web, alice, org, "p").headers["etag"]
    label(web, alice, org, d, "production", revise(web, alice, org, d, 1, template="two"))
    moved = fetch(web, alice, org, "p", headers={"If-None-Match": e1})
    assert moved.status_code == 200 and moved.json()["template"] == "P mid(two)"
    assert moved.headers["etag"] != e1


def test_by_name_304_with_several_dependencies(web, alice, org):
    published(web, alice, org, "d", "one")
    published(web, alice, org, "mid", "mid({{> d}})")
    create(web, alice, org, "p", "P {{> mid}}")
    e1 = fetch(web, alice, org, "p").headers["etag"]
    assert fetch(web, alice, org, "p", headers={"If-None-Match": e1}).status_code == 304
    for i in range(30):
        published(web, alice, org, f"many/{i}", f"x{i}")
    create(web, alice, org, "wide", " ".join(f"{{{{> many/{i}}}}}" for i in range(30)))
    wide = fetch(web, alice, org, "wide").headers["etag"]
    assert fetch(web, alice, org, "wide", headers={"If-None-Match": wide}).status_code == 304


# -- cycles ----------------------------------------------------------------------------------------------
def test_write_time_cycle_is_refused_with_its_path(web, alice, org):
    a = published(web, alice, org, "a", "A base")
    b = published(web, alice, org, "b", "B[{{> a}}]")
    published(web, alice, org, "c", "C[{{> b}}]")
    err = assert_error(web.post(url(org, a, "versions"), json={"base_version": 1, "template": "A[{{> c}}]"},
                                headers=alice.h), 422, "COMPOSITION_CYCLE")
    assert err["error"]["details"]["path"] == ["a", "c", "b", "a"]
    err = assert_error(web.post(url(org, a, "versions"), json={"base_version": 1, "template": "A[{{> a@latest}}]"},
                                headers=alice.h), 422, "COMPOSITION_CYCLE")
    assert err["error"]["details"]["path"] == ["a", "a"]
    err = assert_error(web.post(url(org, b, "versions"), json={"base_version": 1, "template": "B{{> b#1}}"},
                                headers=alice.h), 422, "COMPOSITION_CYCLE")
    assert err["error"]["details"]["path"] == ["b", "b"]
    assert ok(web.q(url(org, a), alice))["latest_version"] == 1
    assert ok(web.q(url(org, b), alice))["latest_version"] == 1


def test_read_time_cycle_after_label_moves_is_422_never_500(web, alice, org):
    # c and e each get a v2 including the other; each write is fine (the other's production is a
    # version without includes), then the production labels move: cycles no write could see.
    c = published(web, alice, org, "c", "C base")
    e = published(web, alice, org, "e", "E base")
    assert revise(web, alice, org, c, 1, template="C[{{> e}}]") == 2
    assert revise(web, alice, org, e, 1, template="E[{{> c}}]") == 2
    assert ok(fetch(web, alice, org, "e"))["template"] == "E[C base]"
    assert ok(fetch(web, alice, org, "c"))["template"] == "C[E base]"
    before = moment()
    label(web, alice, org, c, "production", 2)
    # e (latest, v2) -> c (production, v2) -> e: e is on its own path
    err = assert_error(fetch(web, alice, org, "e"), 422, "COMPOSITION_CYCLE")
    assert err["error"]["details"]["path"] == ["e", "c", "e"]
    label(web, alice, org, e, "production", 2)

    for name, path in (("c", ["c", "e", "c"]), ("e", ["e", "c", "e"])):
        for params in ({}, {"label": "production"}, {"version": "2"},
                       {"as_of": datetime.now(timezone.utc).isoformat()}):
            err = assert_error(fetch(web, alice, org, name, **params), 422, "COMPOSITION_CYCLE")
            assert err["error"]["details"]["path"] == path, (name, params, err)
    for pid, path in ((e, ["e", "c", "e"]), (c, ["c", "e", "c"])):
        err = assert_error(render(web, alice, org, pid), 422, "COMPOSITION_CYCLE")
        assert err["error"]["details"]["path"] == path
        assert_error(render(web, alice, org, pid, label="production"), 422, "COMPOSITION_CYCLE")
    # the raw forms, the prompt reads and the past stay readable
    assert ok(fetch(web, alice, org, "e", resolve="false"))["template"] == "E[{{> c}}]"
    assert ok(web.q(url(org, e), alice))["labels"] == {"production": 2, "latest": 2}
    assert ok(fetch(web, alice, org, "e", as_of=before))["template"] == "E[C base]"
    assert ok(fetch(web, alice, org, "c", as_of=before))["template"] == "C[E base]"
    assert ok(render(web, alice, org, e, {"as_of": before}))["text"] == "E[C base]"
    # moving a label back heals it
    label(web, alice, org, c, "production", 1)
    assert ok(fetch(web, alice, org, "e"))["template"] == "E[C base]"


# -- depth ---------------------------------------------------------------------------------------------
def test_depth_five_is_served_and_six_is_refused(web, alice, org):
    ids = [published(web, alice, org, "lvl/0", "L0")]
    for i in range(1, 6):
        ids.append(published(web, alice, org, f"lvl/{i}", f"L{i}({{{{> lvl/{i - 1}}}}})"))
    got = ok(fetch(web, alice, org, "lvl/5"))
    assert got["template"] == "L5(L4(L3(L2(L1(L0)))))"
    assert [d["name"] for d in got["dependencies"]] == ["lvl/4", "lvl/3", "lvl/2", "lvl/1", "lvl/0"]
    assert ok(render(web, alice, org, ids[5]))["text"] == "L5(L4(L3(L2(L1(L0)))))"
    err = assert_error(web.post(url(org), json={"name": "lvl/6", "template": "L6({{> lvl/5}})"}, headers=alice.h),
                       422, "COMPOSITION_TOO_DEEP")
    assert err["error"]["details"]["max_depth"] == 5
    assert err["error"]["details"]["path"][:2] == ["lvl/6", "lvl/5"]
    assert_error(fetch(web, alice, org, "lvl/6"), 404, "PROMPT_NOT_FOUND")
    # read time: a label move makes a served composition one level too deep
    assert revise(web, alice, org, ids[5], 1, template="flat") == 2
    label(web, alice, org, ids[5], "production", 2)
    top = create(web, alice, org, "lvl/6", "L6({{> lvl/5}})")
    assert ok(fetch(web, alice, org, "lvl/6"))["template"] == "L6(flat)"
    label(web, alice, org, ids[5], "production", 1)
    assert_error(fetch(web, alice, org, "lvl/6"), 422, "COMPOSITION_TOO_DEEP")
    assert_error(render(web, alice, org, top), 422, "COMPOSITION_TOO_DEEP")


# -- missing dependencies ----------------------------------------------------------------------------
def test_missing_dependency_is_refused_at_write(web, alice, org):
    d = create(web, alice, org, "d", "no production label yet")
    cases = [("{{> ghost}}", "ghost", "production", None), ("{{> d}}", "d", "production", None),
             ("{{> d@staging}}", "d", "staging", None), ("{{> d#9}}", "d", None, 9),
             ("{{> ghost/in/folder@qa}}", "ghost/in/folder", "qa", None)]
    for template, name, via, version in cases:
        err = assert_error(web.post(url(org), json={"name": "p", "template": f"x {template}"}, headers=alice.h),
                           422, "DEPENDENCY_NOT_FOUND")["error"]
        assert err["details"]["name"] == name and err["details"]["label"] == via
        assert err["details"]["version"] == version and err["details"]["path"] == ["p"], err
    assert_error(fetch(web, alice, org, "p"), 404, "PROMPT_NOT_FOUND")
    # on a revision too
    q = create(web, alice, org, "q", "fine")
    assert_error(web.post(url(org, q, "versions"), json={"base_version": 1, "template": "{{> d}}"}, headers=alice.h),
                 422, "DEPENDENCY_NOT_FOUND")
    label(web, alice, org, d, "production", 1)
    assert revise(web, alice, org, q, 1, template="{{> d}}") == 2


def test_dependency_label_removed_later_is_422_at_read(web, alice, org):
    d = published(web, alice, org, "d", "D text")
    s = create(web, alice, org, "s", "S text")
    label(web, alice, org, s, "staging", 1)
    p = create(web, alice, org, "p", "P {{> d}} {{> s@staging}}")
    assert ok(fetch(web, alice, org, "p"))["template"] == "P D text S text"
    before = moment()
    unlabel(web, alice, org, d, "production")
    err = assert_error(fetch(web, alice, org, "p"), 422, "DEPENDENCY_NOT_FOUND")["error"]
    assert err["details"]["name"] == "d" and err["details"]["label"] == "production"
    assert_error(render(web, alice, org, p), 422, "DEPENDENCY_NOT_FOUND")
    assert_error(fetch(web, alice, org, "p", as_of=datetime.now(timezone.utc).isoformat()), 422, "DEPENDENCY_NOT_FOUND")
    assert ok(fetch(web, alice, org, "p", as_of=before))["template"] == "P D text S text"
    assert ok(render(web, alice, org, p, {"as_of": before}))["text"] == "P D text S text"
    label(web, alice, org, d, "production", 1)
    unlabel(web, alice, org, s, "staging")
    err = assert_error(fetch(web, alice, org, "p"), 422, "DEPENDENCY_NOT_FOUND")["error"]
    assert err["details"]["name"] == "s" and err["details"]["label"] == "staging"


def test_a_dependency_that_breaks_the_composed_template_is_422_at_read(web, alice, org):
    # "{{" with no "}}" after it is literal in D alone, but inlined before P's "{{x}}" it opens a tag
    d = published(web, alice, org, "d", "D ok")
    p = create(web, alice, org, "p", "P {{> d}} {{x}}")
    assert revise(web, alice, org, d, 1, template="D {{ unclosed") == 2
    label(web, alice, org, d, "production", 2)
    for r in (fetch(web, alice, org, "p"), render(web, alice, org, p, variables={"x": "1"}),
              fetch(web, alice, org, "p", as_of=datetime.now(timezone.utc).isoformat())):
        assert assert_error(r, 422, "INVALID_TEMPLATE")["error"]["details"]["problem"] == "invalid_name"
    assert ok(fetch(web, alice, org, "d"))["template"] == "D {{ unclosed"
    assert ok(fetch(web, alice, org, "p", resolve="false"))["template"] == "P {{> d}} {{x}}"


def test_raw_fetch_as_of_a_moment(web, alice, org):
    published(web, alice, org, "d", "D")
    create(web, alice, org, "p", "P {{> d}} {{y}}")
    at = moment()
    raw = ok(fetch(web, alice, org, "p", resolve="false", as_of=at))
    assert raw["template"] == "P {{> d}} {{y}}" and raw["resolved"] is False and raw["dependencies"] == []
    assert raw["variables"] == ["y"] and raw["as_of"] is not None


def test_raw_fetch_as_of_a_moment_works_when_the_composition_is_broken(web, alice, org):
    d = published(web, alice, org, "d", "D")
    create(web, alice, org, "p", "P {{> d}}")
    unlabel(web, alice, org, d, "production")
    assert ok(fetch(web, alice, org, "p", resolve="false"))["template"] == "P {{> d}}"
    then = fetch(web, alice, org, "p", resolve="false", as_of=datetime.now(timezone.utc).isoformat())
    assert ok(then)["template"] == "P {{> d}}"


def test_every_prompt_name_is_includable_unambiguously(web, alice, org):
    faq = create(web, alice, org, "faq", "FAQ v1")
    assert revise(web, alice, org, faq, 1, template="FAQ v2") == 2
    r = web.post(url(org), json={"name": "faq#2", "template": "the prompt called faq#2"}, headers=alice.h)
    if r.status_code == 422:
        return  # refused: fine
    assert r.status_code == 201, r.text
    label(web, alice, org, r.json()["id"], "production", 1)
    create(web, alice, org, "user", "{{> faq#2}}")
    assert ok(fetch(web, alice, org, "user"))["dependencies"][0]["prompt_id"] == r.json()["id"]


# -- tenancy -----------------------------------------------------------------------------------------------
def test_an_include_never_reaches_another_organisation(web, alice, bob, org):
    org_b = open_org(web, bob, "Other tenant")
    b_secret = "B-ONLY SECRET TEXT"
    b_tone = published(web, bob, org_b, "shared/tone", b_secret)
    published(web, bob, org_b, "b-parent", "B uses {{> shared/tone}}")
    attempts = ["{{> shared/tone}}", "{{> shared/tone@production}}", "{{> shared/tone#1}}", "{{> shared/tone@latest}}",
                f"{{{{> {b_tone}}}}}", "{{> SHARED/TONE}}"]
    for template in attempts:
        r = web.post(url(org), json={"name": "a-parent", "template": f"A: {template}"}, headers=alice.h)
        assert_error(r, 422, "DEPENDENCY_NOT_FOUND")
        assert b_secret not in r.text and org_b not in r.text, r.text
        if b_tone not in template:
            assert b_tone not in r.text, r.text
    # org A's own prompt of that exact name is the one included, always
    a_tone = published(web, alice, org, "shared/tone", "A's own tone")
    pid = create(web, alice, org, "a-parent", "A: {{> shared/tone}}")
    got = ok(fetch(web, alice, org, "a-parent"))
    assert got["template"] == "A: A's own tone" and got["dependencies"] == [dep("shared/tone", a_tone, 1, "production")]
    label_b = web.label(bob, org_b, b_tone, "production", 1)
    assert label_b.status_code == 200
    # when org A's dependency disappears, nothing falls back to org B
    unlabel(web, alice, org, a_tone, "production")
    for r in (fetch(web, alice, org, "a-parent"), render(web, alice, org, pid),
              fetch(web, alice, org, "a-parent", as_of=datetime.now(timezone.utc).isoformat())):
        assert_error(r, 422, "DEPENDENCY_NOT_FOUND")
        assert b_secret not in r.text and b_tone not in r.text
    # org B sees only its own dependents; org A cannot even see B's prompt
    dependents_b = ok(web.q(url(org_b, b_tone, "dependents"), bob))
    assert [d["name"] for d in dependents_b["items"]] == ["b-parent"]
    assert_error(web.q(url(org, b_tone, "dependents"), alice), 404, "PROMPT_NOT_FOUND")
    assert_error(fetch(web, alice, org_b, "shared/tone"), 404, "ORG_NOT_FOUND")
    assert ok(fetch(web, bob, org_b, "b-parent"))["template"] == f"B uses {b_secret}"


# -- rename and aliases ----------------------------------------------------------------------------------
def test_rename_keeps_the_old_name_as_an_alias(web, alice, org):
    tone = published(web, alice, org, "tone", "Be kind.")
    reply = create(web, alice, org, "reply", "R: {{> tone}}")
    before = moment()
    r = web.post(url(org, tone, "rename"), json={"name": "style/tone"}, headers=alice.h)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "style/tone" and r.json()["id"] == tone
    got = ok(web.q(url(org, tone), alice))
    assert got["name"] == "style/tone" and got["folder"] == "style"
    for name in ("tone", "style/tone", "TONE", "style%2Ftone"):
        f = ok(fetch(web, alice, org, name))
        assert f["prompt_id"] == tone and f["name"] == "style/tone", name
    # includes by the old name keep resolving, for old and new prompts
    assert ok(fetch(web, alice, org, "reply"))["template"] == "R: Be kind."
    assert ok(fetch(web, alice, org, "reply"))["dependencies"] == [dep("style/tone", tone, 1, "production")]
    create(web, alice, org, "reply2", "{{> tone}} / {{> style/tone}}")
    assert ok(fetch(web, alice, org, "reply2"))["template"] == "Be kind. / Be kind."
    assert ok(render(web, alice, org, reply))["text"] == "R: Be kind."
    # nobody else can take the old (or the new) name, in any case
    for name in ("tone", "Tone", "style/tone", "STYLE/Tone"):
        err = assert_error(web.post(url(org), json={"name": name, "template": "imposter"}, headers=alice.h), 409,
                           "PROMPT_NAME_TAKEN")
        assert err["error"]["details"]["name"] == name
    other = create(web, alice, org, "other", "o")
    for name in ("tone", "style/tone"):
        assert_error(web.post(url(org, other, "rename"), json={"name": name}, headers=alice.h), 409,
                     "PROMPT_NAME_TAKEN")
    assert ok(web.q(url(org, other), alice))["name"] == "other"
    # the past: the new name did not exist, the old one did
    assert_error(fetch(web, alice, org, "style/tone", as_of=before), 404, "PROMPT_NOT_FOUND")
    assert ok(fetch(web, alice, org, "tone", as_of=before))["name"] == "tone"
    then = ok(web.q(url(org, tone), alice, params={"as_of": before}))
    assert then["name"] == "tone" and then["folder"] == ""
    # renaming back to its own alias is allowed; both names keep naming it
    assert web.post(url(org, tone, "rename"), json={"name": "tone"}, headers=alice.h).status_code == 200
    assert ok(fetch(web, alice, org, "style/tone"))["name"] == "tone"
    assert ok(fetch(web, alice, org, "reply2"))["template"] == "Be kind. / Be kind."


# -- dependents ----------------------------------------------------------------------------------------------
def test_dependents_lists_what_a_change_affects(web, alice, org):
    d = published(web, alice, org, "lib/d", "D")
    assert revise(web, alice, org, d, 1, template="D2") == 2
    label(web, alice, org, d, "staging", 2)
    p1 = create(web, alice, org, "p1", "{{> lib/d}}")
    create(web, alice, org, "p2", "{{> lib/d#1}} and {{> lib/d#2}}")
    create(web, alice, org, "p3", "{{> lib/d@staging}}")
    create(web, alice, org, "p4", "no include of lib/d")
    chat = create(web, alice, org, "p5", type="chat", messages=[{"role": "system", "content": "{{> lib/d}}"}])
    unrelated = published(web, alice, org, "other", "x")
    create(web, alice, org, "p6", "{{> other}}")

    items = {i["name"]: i for i in ok(web.q(url(org, d, "dependents"), alice))["items"]}
    assert set(items) == {"p1", "p2", "p3", "p5"}, items
    assert items["p1"]["prompt_id"] == p1 and items["p1"]["versions"] == [1] and items["p1"]["labels"] == ["latest"]
    assert items["p1"]["includes"] == [{"label": "production", "version": None}]
    assert sorted(i["version"] for i in items["p2"]["includes"]) == [1, 2]
    assert all(i["label"] is None for i in items["p2"]["includes"]) and items["p2"]["versions"] == [1]
    assert items["p3"]["includes"] == [{"label": "staging", "version": None}]
    assert items["p5"]["prompt_id"] == chat and items["p1"]["archived"] is False
    assert [i["name"] for i in ok(web.q(url(org, unrelated, "dependents"), alice))["items"]] == ["p6"]

    # an old, unlabelled version no longer counts
    assert revise(web, alice, org, p1, 1, template="standalone now") == 2
    names = [i["name"] for i in ok(web.q(url(org, d, "dependents"), alice))["items"]]
    assert "p1" not in names
    # ... until a label serves it again
    label(web, alice, org, p1, "production", 1)
    items = {i["name"]: i for i in ok(web.q(url(org, d, "dependents"), alice))["items"]}
    assert items["p1"]["versions"] == [1] and items["p1"]["labels"] == ["production"]
    # includes by an old name count: rename d, include it by its old name
    assert web.post(url(org, d, "rename"), json={"name": "lib/renamed"}, headers=alice.h).status_code == 200
    create(web, alice, org, "p7", "{{> lib/d@staging}}")
    names = [i["name"] for i in ok(web.q(url(org, d, "dependents"), alice))["items"]]
    assert "p7" in names and "p4" not in names
    # archived dependents are flagged
    assert web.post(url(org, p1, "archive"), headers=alice.h).status_code == 200
    items = {i["name"]: i for i in ok(web.q(url(org, d, "dependents"), alice))["items"]}
    assert items["p1"]["archived"] is True
    assert_error(web.q(url(org, "00000000-0000-0000-0000-000000000000", "dependents"), alice), 404, "PROMPT_NOT_FOUND")


def test_no_500_and_no_stack_trace_on_any_composition_error(web, alice, org):
    """Every refusal on the composition path is the one JSON error shape."""
    published(web, alice, org, "d", "D")
    for template in ("{{> }}", "{{> d#0}}", "{{> d#x}}", "{{> d@}}", "{{> d@bad label}}", "{{> /d}}", "{{> d/}}",
                     "{{> a//b}}", "{{> d@a#1}}", "{{>d}}{{/d}}"):
        r = web.post(url(org), json={"name": "p", "template": template}, headers=alice.h)
        body = assert_error(r)
        assert r.status_code == 422 and body["error"]["code"] in {"INVALID_TEMPLATE", "DEPENDENCY_NOT_FOUND"}, (
            template, r.status_code, json.dumps(body))
