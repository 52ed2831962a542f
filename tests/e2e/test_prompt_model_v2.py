"""Prompt model v2 over HTTP (issue 9), on SQLite and Postgres: text and chat prompts, template
formats, typed variables, render (schema checks, defaults, strict, placeholders), versions, diffs,
time travel of the content, and the promise to existing v1 clients.

Composition (includes) is in test_composition.py, folders in test_folders.py."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tests.e2e.support import assert_error


# -- fixtures and helpers -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def web(module_api):
    return module_api


@pytest.fixture(scope="module")
def owner(web):
    """The one login of this module (logins are throttled per client address)."""
    return web.user("v2-owner")


@pytest.fixture
def org(web, owner):
    """A fresh organisation per test: names never collide, and the plan's prompt limit is far."""
    return open_org(web, owner, "Model v2")


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


def create(web, who, org, **body) -> str:
    r = web.post(url(org), json=body, headers=who.h)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def revise(web, who, org, pid, base, **body) -> int:
    r = web.post(url(org, pid, "versions"), json={"base_version": base, **body}, headers=who.h)
    assert r.status_code == 201, r.text
    return r.json()["version"]


def render(web, who, org, pid, **body):
    return web.post(url(org, pid, "render"), json=body, headers=who.h)


def ok(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


CONTENT_KEYS = ("type", "template", "messages", "template_format", "variables", "variable_schema")


def content(body: dict) -> dict:
    return {k: body[k] for k in CONTENT_KEYS}


def msg(role, text):
    """A message as every read shows it (MessageOut: role/content set, type/name null)."""
    return {"role": role, "content": text, "type": None, "name": None}


def slot(name):
    """A placeholder as every read shows it."""
    return {"role": None, "content": None, "type": "placeholder", "name": name}


def spec(name, type="string", required=True, default=None, description=""):
    return {"name": name, "type": type, "required": required, "default": default, "description": description}


# -- existing v1 clients ------------------------------------------------------------------------
def test_v1_client_create_with_name_and_template_only_reads_as_text(web, owner, org):
    r = web.post(url(org), json={"name": "legacy", "template": "Hello {{name}}, about {{ topic }}"}, headers=owner.h)
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"id", "name", "version", "position"} and r.json()["version"] == 1
    pid = r.json()["id"]
    expected = {"type": "text", "template": "Hello {{name}}, about {{ topic }}", "messages": None,
                "template_format": "mustache", "variables": ["name", "topic"], "variable_schema": None}
    assert content(ok(web.q(url(org, pid), owner))) == expected
    assert content(ok(web.q(url(org, pid, "versions", 1), owner))) == expected
    assert [content(v) for v in ok(web.q(url(org, pid, "versions"), owner))["items"]] == [expected]
    fetched = ok(web.q(url(org, "by-name", "legacy"), owner))
    assert content(fetched) == expected and fetched["dependencies"] == [] and fetched["resolved"] is True
    out = ok(render(web, owner, org, pid, variables={"name": "Ada", "topic": "bills"}))
    assert out["type"] == "text" and out["text"] == "Hello Ada, about bills"
    assert out["messages"] is None and out["dependencies"] == [] and out["version"] == 1
    # never HTML-escaped
    assert ok(render(web, owner, org, pid, variables={"name": "<b>&'\"", "topic": "x"}))["text"] == (
        "Hello <b>&'\", about x")
    # a v1 revision: base_version + template (+ variable names), nothing else
    assert revise(web, owner, org, pid, 1, template="Bye {{name}}", variables=["name"]) == 2
    v2 = ok(web.q(url(org, pid, "versions", 2), owner))
    assert v2["type"] == "text" and v2["template"] == "Bye {{name}}" and v2["variables"] == ["name"]
    assert v2["template_format"] == "mustache" and v2["variable_schema"] is None
    # v1 render errors keep their shape: every name required, unknown refused
    body = assert_error(render(web, owner, org, pid, variables={"nme": "typo"}), 422, "RENDER_VARIABLES_MISMATCH")
    assert body["error"]["details"]["missing"] == ["name"] and body["error"]["details"]["unknown"] == ["nme"]


# -- text prompts with a typed schema -------------------------------------------------------------
SCHEMA = [
    {"name": "product", "type": "string", "description": "  what the customer bought  "},
    {"name": "count", "type": "number", "required": False, "default": 2},
    {"name": "vip", "type": "boolean", "required": False, "default": False},
    {"name": "items", "type": "list", "required": False},
]
TEMPLATE = "{{product}} x{{count}}{{#vip}} VIP{{/vip}}{{#items}} [{{sku}}]{{/items}}"
CLEAN_SCHEMA = [spec("product", description="what the customer bought"), spec("count", "number", False, 2),
                spec("vip", "boolean", False, False), spec("items", "list", False, None)]


def test_typed_schema_round_trips_through_every_read(web, owner, org):
    pid = create(web, owner, org, name="order", template=TEMPLATE, variables=SCHEMA)
    expected = {"type": "text", "template": TEMPLATE, "messages": None, "template_format": "mustache",
                "variables": ["product", "count", "vip", "items"], "variable_schema": CLEAN_SCHEMA}
    assert content(ok(web.q(url(org, pid), owner))) == expected
    assert content(ok(web.q(url(org, pid, "versions", 1), owner))) == expected
    assert content(ok(web.q(url(org, "by-name", "order"), owner))) == expected
    assert content(ok(web.q(url(org, "by-name", "order"), owner, params={"resolve": "false"}))) == expected


def test_render_applies_defaults_and_types(web, owner, org):
    pid = create(web, owner, org, name="order", template=TEMPLATE, variables=SCHEMA)
    assert ok(render(web, owner, org, pid, variables={"product": "Tea"}))["text"] == "Tea x2"
    assert ok(render(web, owner, org, pid, variables={"product": "Tea", "count": 3, "vip": True}))["text"] == "Tea x3 VIP"
    # null for an optional variable means "not given": the default applies
    assert ok(render(web, owner, org, pid, variables={"product": "Tea", "count": None}))["text"] == "Tea x2"
    out = ok(render(web, owner, org, pid, variables={"product": "Tea", "items": [{"sku": "A1"}, {"sku": "B2"}]}))
    assert out["text"] == "Tea x2 [A1] [B2]"
    # numbers render as JSON numbers
    assert ok(render(web, owner, org, pid, variables={"product": "Tea", "count": 2.5}))["text"] == "Tea x2.5"


def test_render_lists_every_problem_at_once(web, owner, org):
    pid = create(web, owner, org, name="order", template=TEMPLATE, variables=SCHEMA)
    r = render(web, owner, org, pid, variables={"count": "three", "vip": "yes", "items": {"sku": 1}, "zz": 1, "yy": 2})
    details = assert_error(r, 422, "RENDER_VARIABLES_MISMATCH")["error"]["details"]
    assert details["missing"] == ["product"]
    assert sorted(details["unknown"]) == ["yy", "zz"]
    problems = {(p["variable"], p["problem"]): p for p in details["problems"]}
    assert set(problems) == {("product", "missing"), ("count", "wrong_type"), ("vip", "wrong_type"),
                             ("items", "wrong_type"), ("zz", "unknown"), ("yy", "unknown")}, details
    assert (problems[("count", "wrong_type")]["expected"], problems[("count", "wrong_type")]["got"]) == ("number", "string")
    assert (problems[("vip", "wrong_type")]["expected"], problems[("vip", "wrong_type")]["got"]) == ("boolean", "string")
    assert (problems[("items", "wrong_type")]["expected"], problems[("items", "wrong_type")]["got"]) == ("list", "object")


def test_render_strict_false_ignores_unknown_but_still_checks_the_rest(web, owner, org):
    pid = create(web, owner, org, name="order", template=TEMPLATE, variables=SCHEMA)
    values = {"product": "Tea", "extra": "ignored", "other": {"x": 1}}
    strict = assert_error(render(web, owner, org, pid, variables=values), 422, "RENDER_VARIABLES_MISMATCH")
    assert sorted(strict["error"]["details"]["unknown"]) == ["extra", "other"]
    assert ok(render(web, owner, org, pid, variables=values, strict=False))["text"] == "Tea x2"
    loose = assert_error(render(web, owner, org, pid, variables={"count": "x", "extra": 1}, strict=False), 422,
                         "RENDER_VARIABLES_MISMATCH")["error"]["details"]
    assert loose["unknown"] == [] and {(p["variable"], p["problem"]) for p in loose["problems"]} == {
        ("product", "missing"), ("count", "wrong_type")}


def test_schema_refusals_at_write(web, owner, org):
    cases = [
        ({"template": "{{a}}", "variables": [{"name": "a", "required": True, "default": "x"}]},
         "INVALID_VARIABLES", "default_with_required"),
        ({"template": "{{a}}", "variables": [{"name": "a", "type": "number", "required": False, "default": "x"}]},
         "INVALID_VARIABLES", "default_wrong_type"),
        ({"template": "{{a}}", "variables": [{"name": "a"}, {"name": "a"}]}, "INVALID_VARIABLES", "duplicate"),
        ({"template": "{{a}}", "variables": [{"name": "b"}]}, "VARIABLES_MISMATCH", None),
    ]
    for extra, code, problem in cases:
        body = assert_error(web.post(url(org), json={"name": "bad", **extra}, headers=owner.h), 422, code)
        if problem:
            assert body["error"]["details"]["problem"] == problem, body
    mismatch = assert_error(web.post(url(org), json={"name": "bad", "template": "{{a}} {{c}}",
                                                     "variables": [{"name": "a"}, {"name": "b"}]}, headers=owner.h),
                            422, "VARIABLES_MISMATCH")
    assert mismatch["error"]["details"] == {"undeclared": ["c"], "unused": ["b"]}
    assert_error(web.q(url(org, "by-name", "bad"), owner), 404, "PROMPT_NOT_FOUND")


def test_revision_keeps_the_schema_of_variables_still_used(web, owner, org):
    pid = create(web, owner, org, name="order", template=TEMPLATE, variables=SCHEMA)
    assert revise(web, owner, org, pid, 1, template="{{product}} for {{customer}}") == 2
    v2 = ok(web.q(url(org, pid, "versions", 2), owner))
    assert v2["variables"] == ["product", "customer"]
    assert v2["variable_schema"] == [CLEAN_SCHEMA[0], spec("customer")]
    # revising only the message keeps content and schema exactly
    assert revise(web, owner, org, pid, 2, message="note only") == 3
    assert content(ok(web.q(url(org, pid, "versions", 3), owner))) == content(v2)


# -- chat prompts --------------------------------------------------------------------------------
CHAT = [{"role": "system", "content": "You support {{product}}.{{#vip}} Be extra careful.{{/vip}}"},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{question}}"}]
CHAT_VARS = [{"name": "product"}, {"name": "vip", "type": "boolean", "required": False, "default": False},
             {"name": "question"}]


def test_chat_prompt_reads_everywhere(web, owner, org):
    pid = create(web, owner, org, name="support/chat", type="chat", messages=CHAT, variables=CHAT_VARS)
    expected = {"type": "chat", "template": None,
                "messages": [msg("system", CHAT[0]["content"]), slot("history"), msg("user", "{{question}}")],
                "template_format": "mustache", "variables": ["product", "vip", "question"],
                "variable_schema": [spec("product"), spec("vip", "boolean", False, False), spec("question")]}
    got = ok(web.q(url(org, pid), owner))
    assert content(got) == expected and got["folder"] == "support"
    assert content(ok(web.q(url(org, pid, "versions", 1), owner))) == expected
    assert [content(v) for v in ok(web.q(url(org, pid, "versions"), owner))["items"]] == [expected]
    fetched = ok(web.q(url(org, "by-name", "support/chat"), owner))
    assert content(fetched) == expected and fetched["dependencies"] == []
    assert content(ok(web.q(url(org, "by-name", "support/chat"), owner, params={"resolve": "false"}))) == expected


def test_keyword_search_reads_every_message_of_a_chat_prompt(web, owner, org):
    """Search indexes the text of all messages: words that appear only in the system message or only
    in a later user message both find the prompt, and a revision's messages replace the old ones."""
    messages = [{"role": "system", "content": "You are a meticulous sommelier for {{product}}."},
                {"type": "placeholder", "name": "history"},
                {"role": "user", "content": "Which vintage pairs with {{dish}}? Mention terroir."}]
    pid = create(web, owner, org, name="wine/pairing", type="chat", messages=messages)
    found = lambda q: [r["prompt_id"] for r in ok(web.search(org, owner, {"query": q, "mode": "keyword"}))["items"]]  # noqa: E731
    assert found("sommelier") == [pid]
    assert found("terroir vintage") == [pid]
    r = web.post(url(org, pid, "versions"), headers=owner.h, json={
        "base_version": 1, "messages": [{"role": "system", "content": "You are a cheesemonger."}]})
    assert r.status_code == 201, r.text
    assert found("cheesemonger") == [pid]
    assert found("sommelier") == []


def test_chat_render_splices_placeholders_as_given(web, owner, org):
    pid = create(web, owner, org, name="chat", type="chat", messages=CHAT, variables=CHAT_VARS)
    history = [{"role": "user", "content": "Hi {{product}}"}, {"role": "assistant", "content": "Hello!"}]
    out = ok(render(web, owner, org, pid, variables={"product": "Forge", "question": "Refund?", "vip": True},
                    placeholders={"history": history}))
    assert out["type"] == "chat" and out["text"] is None and out["version"] == 1
    assert out["messages"] == [msg("system", "You support Forge. Be extra careful."),
                               msg("user", "Hi {{product}}"),  # spliced as given, never rendered
                               msg("assistant", "Hello!"), msg("user", "Refund?")]
    # an empty history splices nothing; the default of vip applies
    out = ok(render(web, owner, org, pid, variables={"product": "Forge", "question": "Q"}, placeholders={"history": []}))
    assert out["messages"] == [msg("system", "You support Forge."), msg("user", "Q")]
    # a placeholder left out is listed
    details = assert_error(render(web, owner, org, pid, variables={"product": "F", "question": "Q"}), 422,
                           "RENDER_VARIABLES_MISMATCH")["error"]["details"]
    assert {"placeholder": "history", "problem": "missing"} in details["problems"]
    assert details["missing_placeholders"] == ["history"]


def test_chat_render_lists_variable_and_placeholder_problems_together(web, owner, org):
    pid = create(web, owner, org, name="chat", type="chat", messages=CHAT, variables=CHAT_VARS)
    details = assert_error(render(web, owner, org, pid, variables={"vip": "yes"}), 422,
                           "RENDER_VARIABLES_MISMATCH")["error"]["details"]
    kinds = {(p.get("variable") or p.get("placeholder"), p["problem"]) for p in details["problems"]}
    assert kinds == {("product", "missing"), ("question", "missing"), ("vip", "wrong_type"),
                     ("history", "missing")}, details


def test_chat_revision_and_message_by_message_diff(web, owner, org):
    pid = create(web, owner, org, name="chat", type="chat",
                 messages=[{"role": "system", "content": "Sys {{a}}"}, {"role": "user", "content": "U1"},
                           {"role": "assistant", "content": "gone soon"}])
    v2 = [{"role": "system", "content": "Sys {{a}}\nline two"}, {"role": "user", "content": "U1"},
          {"type": "placeholder", "name": "h"}]
    assert revise(web, owner, org, pid, 1, messages=v2) == 2
    got = ok(web.q(url(org, pid, "versions", 2), owner))
    assert got["messages"] == [msg("system", "Sys {{a}}\nline two"), msg("user", "U1"), slot("h")]
    diff = ok(web.q(url(org, pid, "diff"), owner, params={"from": 1, "to": 2}))
    assert diff["template_diff"] == "" and diff["changes"] == {}
    by_index = {d["index"]: d for d in diff["messages_diff"]}
    assert set(by_index) == {0, 2}, diff  # message 1 did not change
    assert by_index[0]["before"] == msg("system", "Sys {{a}}") and by_index[0]["after"] == msg("system", "Sys {{a}}\nline two")
    assert by_index[0]["content_diff"] == "--- v1[0]\n+++ v2[0]\n@@ -1 +1,2 @@\n Sys {{a}}\n+line two\n"
    assert by_index[2]["before"] == msg("assistant", "gone soon") and by_index[2]["after"] == slot("h")
    # reversed: what was added is removed
    back = ok(web.q(url(org, pid, "diff"), owner, params={"from": 2, "to": 1}))
    assert {d["index"] for d in back["messages_diff"]} == {0, 2}
    # and a shorter list: the missing positions are "removed" (after null)
    assert revise(web, owner, org, pid, 2, messages=[{"role": "system", "content": "Sys {{a}}"}]) == 3
    short = ok(web.q(url(org, pid, "diff"), owner, params={"from": 2, "to": 3}))
    assert [(d["index"], d["after"]) for d in short["messages_diff"]] == [
        (0, msg("system", "Sys {{a}}")), (1, None), (2, None)]


def test_text_diff_reports_format_and_schema_changes(web, owner, org):
    pid = create(web, owner, org, name="t", template="Hi {{ who }}", template_format="plain")
    assert revise(web, owner, org, pid, 1, template="Hi {{who}}!", template_format="mustache",
                  variables=[{"name": "who", "description": "the reader"}]) == 2
    diff = ok(web.q(url(org, pid, "diff"), owner, params={"from": 1, "to": 2}))
    assert "-Hi {{ who }}\n" in diff["template_diff"] and "+Hi {{who}}!\n" in diff["template_diff"]
    assert diff["messages_diff"] == []
    assert diff["changes"]["template_format"] == {"from": "plain", "to": "mustache"}
    assert diff["changes"]["variable_schema"] == {"from": None, "to": [spec("who", description="the reader")]}
    assert "variables" not in diff["changes"]


def test_type_is_fixed_and_content_must_match_it(web, owner, org):
    chat = create(web, owner, org, name="c", type="chat", messages=[{"role": "user", "content": "x"}])
    text = create(web, owner, org, name="t", template="x")
    assert_error(web.post(url(org, chat, "versions"), json={"base_version": 1, "template": "y"}, headers=owner.h),
                 422, "PROMPT_TYPE_MISMATCH")
    assert_error(web.post(url(org, text, "versions"), json={"base_version": 1,
                                                            "messages": [{"role": "user", "content": "y"}]},
                          headers=owner.h), 422, "PROMPT_TYPE_MISMATCH")
    cases = [
        ({"name": "n", "type": "chat"}, "INVALID_MESSAGES"),
        ({"name": "n", "type": "chat", "messages": []}, "INVALID_MESSAGES"),
        ({"name": "n", "template": "t", "messages": [{"role": "user", "content": "x"}]}, "PROMPT_TYPE_MISMATCH"),
        ({"name": "n", "type": "chat", "template": "t", "messages": [{"role": "user", "content": "x"}]},
         "PROMPT_TYPE_MISMATCH"),
        ({"name": "n", "type": "chat", "messages": [{"type": "placeholder", "name": "h"},
                                                    {"type": "placeholder", "name": "h"}]}, "INVALID_MESSAGES"),
        ({"name": "n", "type": "bogus", "template": "t"}, "VALIDATION_ERROR"),
        ({"name": "n", "template": "t", "template_format": "jinja"}, "VALIDATION_ERROR"),
        ({"name": "n", "type": "chat", "messages": [{"role": "robot", "content": "x"}]}, "VALIDATION_ERROR"),
    ]
    for body, code in cases:
        assert_error(web.post(url(org), json=body, headers=owner.h), 422, code)
    assert ok(web.q(url(org, chat), owner))["latest_version"] == 1
    assert ok(web.q(url(org, text), owner))["latest_version"] == 1


# -- template formats ------------------------------------------------------------------------------
HANDLEBARS = "{{#each items}}- {{ name }}{{/each}} {{CGI-1.output}} {{> not_an_include}}"


def test_plain_keeps_handlebars_literal_and_mustache_refuses_it_clearly(web, owner, org):
    pid = create(web, owner, org, name="hb", template=HANDLEBARS, template_format="plain")
    got = ok(web.q(url(org, "by-name", "hb"), owner))
    assert got["template_format"] == "plain" and got["template"] == HANDLEBARS
    assert got["variables"] == ["name"] and got["dependencies"] == []  # `{{> x}}` is literal text in plain
    out = ok(render(web, owner, org, pid, variables={"name": "N"}))
    assert out["text"] == "{{#each items}}- N{{/each}} {{CGI-1.output}} {{> not_an_include}}"
    for body in ({"name": "hb2", "template": HANDLEBARS},
                 {"name": "hb2", "template": HANDLEBARS, "template_format": "mustache"}):
        err = assert_error(web.post(url(org), json=body, headers=owner.h), 422, "INVALID_TEMPLATE")["error"]
        assert err["details"]["problem"] == "invalid_name" and err["details"]["tag"] == "{{#each items}}"
        assert err["details"]["offset"] == 0 and err["details"]["line"] == 1
        assert "plain" in err["message"]  # tells the user how to keep the text literal
    # a revision that leaves the format out keeps plain; switching to mustache is refused the same way
    assert revise(web, owner, org, pid, 1, template="{{#each xs}}{{ name }}!{{/each}}") == 2
    assert ok(web.q(url(org, pid, "versions", 2), owner))["template_format"] == "plain"
    err = assert_error(web.post(url(org, pid, "versions"), json={"base_version": 2, "template_format": "mustache"},
                                headers=owner.h), 422, "INVALID_TEMPLATE")["error"]
    assert err["details"]["tag"] == "{{#each xs}}"
    # in chat messages too, with the message index
    err = assert_error(web.post(url(org), json={"name": "c", "type": "chat", "messages": [
        {"role": "system", "content": "ok"}, {"role": "user", "content": "line\n{{#each items}}"}]},
        headers=owner.h), 422, "INVALID_TEMPLATE")["error"]
    assert err["details"]["index"] == 1 and err["details"]["line"] == 2
    c = create(web, owner, org, name="c", type="chat", template_format="plain",
               messages=[{"role": "user", "content": "{{#each items}} {{ q }}"}])
    assert ok(render(web, owner, org, c, variables={"q": "Q"}))["messages"] == [msg("user", "{{#each items}} Q")]


def test_mustache_refusals_name_the_tag_and_line(web, owner, org):
    cases = [("a\n{{#s}}x", "unclosed_section", 2), ("{{/s}}", "unexpected_close", 1),
             ("{{#a}}{{/b}}", "mismatched_close", 1), ("x {{=<% %>=}}", "set_delimiter", 1),
             ("{{ not a name }}", "invalid_name", 1), ("{{> a@b@c}}", "invalid_include", 1)]
    for template, problem, line in cases:
        err = assert_error(web.post(url(org), json={"name": "m", "template": template}, headers=owner.h), 422,
                           "INVALID_TEMPLATE")["error"]
        assert err["details"]["problem"] == problem and err["details"]["line"] == line, (template, err)


# -- time travel of the content ---------------------------------------------------------------------
def test_time_travel_shows_the_content_of_the_moment(web, owner, org):
    pid = create(web, owner, org, name="c", type="chat", messages=[{"role": "user", "content": "one {{a}}"}])
    time.sleep(0.02)
    t1 = datetime.now(timezone.utc)
    time.sleep(0.02)
    revise(web, owner, org, pid, 1, messages=[{"role": "system", "content": "two"}, {"type": "placeholder", "name": "h"}])
    then = ok(web.q(url(org, pid), owner, params={"as_of": t1.isoformat()}))
    assert then["as_of"] is not None and then["latest_version"] == 1
    assert then["messages"] == [msg("user", "one {{a}}")] and then["variables"] == ["a"] and then["type"] == "chat"
    fetched = ok(web.q(url(org, "by-name", "c"), owner, params={"as_of": t1.isoformat().replace("+00:00", "Z")}))
    assert fetched["version"] == 1 and fetched["messages"] == [msg("user", "one {{a}}")]
    out = ok(web.post(url(org, pid, "render"), params={"as_of": t1.isoformat()}, json={"variables": {"a": "A"}},
                      headers=owner.h))
    assert out["version"] == 1 and out["messages"] == [msg("user", "one A")]
    now = ok(web.q(url(org, pid), owner))
    assert now["latest_version"] == 2 and now["messages"] == [msg("system", "two"), slot("h")]
