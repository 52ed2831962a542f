"""Prompt model v2: chat prompts, template formats, typed variable schemas, rename, upcasting v1 events,
and replay of random v2 histories."""
from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.persistence import Mapper, StoredEvent

from application.base import BaseApp
from domain.errors import Conflict, DomainError, Invalid
from domain.prompt import Prompt
from domain.template import check_values
from tests.unit.domain_helpers import ACTOR, REQUEST, attrs, by, given, history, refused, replay, then

PROMPT_ID = UUID("00000000-0000-4000-8000-0000000000d2")
ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_v1" / "events.db"

MESSAGES = [
    {"role": "system", "content": "You support {{product}}. Be {{tone}}."},
    {"type": "placeholder", "name": "history"},
    {"role": "user", "content": "{{question}} (about {{product}})"},
]
SCHEMA_TEMPLATE = "{{#verbose}}Explain {{topic}} in depth. {{/verbose}}Answer {{question}}"
SCHEMA = [
    {"name": "verbose", "type": "boolean", "default": False},
    {"name": "topic", "description": "what to explain"},
    {"name": "question", "type": "string", "required": True},
]
CLEAN_SCHEMA = [
    {"name": "verbose", "type": "boolean", "required": False, "default": False, "description": ""},
    {"name": "topic", "type": "string", "required": True, "default": None, "description": "what to explain"},
    {"name": "question", "type": "string", "required": True, "default": None, "description": ""},
]


def create(actor: str = ACTOR, request: str = "req-create", **overrides) -> Prompt:
    args = dict(id=PROMPT_ID, org_id=ORG_ID, name="greeting", template="Hello {{name}}", variables=None,
                model_config=None, tags=[], message="first")
    args.update(overrides)
    with by(actor, request):
        return Prompt.create(**args)


def created(**overrides) -> list:
    return history(create(**overrides))


def chat_created(**overrides) -> list:
    return created(template=None, type="chat", messages=MESSAGES, **overrides)


def after(base: list, command, request: str = "r", actor: str = ACTOR) -> list:
    prompt = given(base)
    with by(actor, request):
        command(prompt)
    return base + history(prompt)


def required_string(name: str) -> dict:
    return {"name": name, "type": "string", "required": True, "default": None, "description": ""}


# -- chat prompts ----------------------------------------------------------------------------------


def test_create_chat_emits_created_with_messages_placeholders_and_variables_across_messages():
    prompt = create(template=None, type="chat", messages=MESSAGES, request_hash="fp")

    assert then(prompt) == [("Created", {
        "org_id": ORG_ID, "name": "greeting", "template": "", "variables": ["product", "tone", "question"],
        "model_config": {}, "tags": [], "message": "first", "actor": ACTOR, "request_id": "req-create",
        "request_hash": "fp", "type": "chat", "messages": MESSAGES, "variable_schema": None,
        "template_format": "mustache",
    })]
    assert prompt.type == "chat"
    assert prompt.versions[0] == {
        "version": 1, "type": "chat", "template": "", "messages": MESSAGES, "template_format": "mustache",
        "variables": ["product", "tone", "question"], "variable_schema": None, "model_config": {}, "tags": [],
        "message": "first", "author": ACTOR,
    }


def test_chat_variables_follow_the_section_rule_in_every_message():
    messages = [
        {"role": "system", "content": "{{#items}}- {{label}}{{/items}}"},
        {"role": "user", "content": "{{^items}}nothing for {{who}}{{/items}} {{who}}"},
        {"role": "assistant", "content": "ok {{ai.name}}"},
    ]

    ((_, event),) = then(create(template=None, type="chat", messages=messages))

    assert event["variables"] == ["items", "who", "ai"], "label is an item field, not a top-level variable"


def test_chat_with_a_schema_declares_variables_of_all_messages():
    schema = [{"name": "question"}, {"name": "tone", "default": "kind"}, {"name": "product", "type": "object"}]

    ((_, event),) = then(create(template=None, type="chat", messages=MESSAGES, variables=schema))

    assert event["variables"] == ["question", "tone", "product"]
    assert event["variable_schema"] == [
        required_string("question"),
        {"name": "tone", "type": "string", "required": False, "default": "kind", "description": ""},
        {"name": "product", "type": "object", "required": True, "default": None, "description": ""},
    ]
    refused(None, lambda: create(template=None, type="chat", messages=MESSAGES, variables=schema[:2]),
            kind=Invalid, code="VARIABLES_MISMATCH", details={"undeclared": ["product"], "unused": []})


def test_chat_messages_are_validated():
    refused(None, lambda: create(template=None, type="chat", messages=[]), kind=Invalid, code="INVALID_MESSAGES",
            details={"problem": "empty"})
    refused(None, lambda: create(template=None, type="chat", messages=None), kind=Invalid, code="INVALID_MESSAGES",
            details={"problem": "not_a_list"})
    error = refused(None, lambda: create(template=None, type="chat",
                                         messages=[{"role": "user", "content": "{{#each x}}"}]),
                    kind=Invalid, code="INVALID_TEMPLATE")
    assert error.details["index"] == 0


def test_create_chat_with_a_template_and_text_with_messages_are_type_mismatches():
    refused(None, lambda: create(template="Hi", type="chat", messages=MESSAGES), kind=Invalid,
            code="PROMPT_TYPE_MISMATCH", details={"type": "chat"})
    refused(None, lambda: create(template="Hi", type="text", messages=MESSAGES), kind=Invalid,
            code="PROMPT_TYPE_MISMATCH", details={"type": "text"})


@pytest.mark.parametrize("kind", ["voice", "Text", "", None])
def test_create_with_an_unknown_type_is_refused(kind):
    refused(None, lambda: create(type=kind), kind=Invalid, code="INVALID_PROMPT_TYPE",
            details={"allowed": ["text", "chat"]})


def test_revise_a_chat_prompt_with_a_template_is_a_type_mismatch():
    prompt = given(chat_created())

    refused(prompt, lambda: prompt.revise(1, template="Hello {{name}}"), kind=Invalid,
            code="PROMPT_TYPE_MISMATCH", details={"type": "chat"})
    refused(prompt, lambda: prompt.revise(1, template=""), kind=Invalid, code="PROMPT_TYPE_MISMATCH",
            details={"type": "chat"})


def test_revise_a_text_prompt_with_messages_is_a_type_mismatch():
    prompt = given(created())

    refused(prompt, lambda: prompt.revise(1, messages=MESSAGES), kind=Invalid, code="PROMPT_TYPE_MISMATCH",
            details={"type": "text"})


def test_revise_chat_with_messages_emits_revised_with_the_new_messages():
    prompt = given(chat_created())
    messages = [{"role": "user", "content": "Only {{question}}"}, {"type": "placeholder", "name": "examples"}]

    with by("user:bob", REQUEST):
        prompt.revise(1, messages=messages, message="shorter")

    assert then(prompt) == [("Revised", {
        "version": 2, "org_id": ORG_ID, "template": "", "variables": ["question"], "model_config": {}, "tags": [],
        "message": "shorter", "actor": "user:bob", "request_id": REQUEST, "idempotency": "", "request_hash": "",
        "messages": messages, "variable_schema": None, "template_format": "mustache",
    })]
    assert prompt.versions[1]["type"] == "chat"
    assert prompt.versions[0]["messages"] == MESSAGES, "earlier versions are immutable"


def test_the_type_is_fixed_at_creation():
    base = after(chat_created(), lambda p: p.revise(1, tags=["x"]), request="r1")
    base = after(base, lambda p: p.revise(2, messages=[{"role": "user", "content": "{{q}}"}]), request="r2")
    prompt = given(base)

    assert prompt.type == "chat"
    assert [v["type"] for v in prompt.versions] == ["chat", "chat", "chat"]
    assert "type" not in attrs(base[1]) and "type" not in attrs(base[2]), "a revision cannot carry a type"
    assert prompt.versions[1]["messages"] == MESSAGES, "omitted messages are inherited"
    with pytest.raises(TypeError), by():
        prompt.revise(3, type="text")


# -- template_format -----------------------------------------------------------------------------


def test_create_defaults_to_mustache():
    ((_, event),) = then(create(template="{{#items}}{{.}}{{/items}} {{> footer}}"))

    assert event["template_format"] == "mustache"
    assert event["variables"] == ["items"]


def test_handlebars_text_is_refused_in_mustache_and_accepted_in_plain():
    template = "{{#each projects}}{{ name }}{{/each}} {{CGI-1.output}}"

    refused(None, lambda: create(template=template), kind=Invalid, code="INVALID_TEMPLATE")
    ((_, event),) = then(create(template=template, template_format="plain"))

    assert (event["template"], event["template_format"], event["variables"]) == (template, "plain", ["name"])


@pytest.mark.parametrize("fmt", ["jinja", "Mustache", "", " plain", 1])
def test_unknown_template_format_is_refused(fmt):
    error = refused(None, lambda: create(template_format=fmt), kind=Invalid, code="INVALID_TEMPLATE_FORMAT")
    assert error.details["allowed"] == ["mustache", "plain"]

    prompt = given(created())
    error = refused(prompt, lambda: prompt.revise(1, template_format=fmt), kind=Invalid,
                    code="INVALID_TEMPLATE_FORMAT")
    assert error.details["allowed"] == ["mustache", "plain"]


def test_create_without_a_format_is_refused_and_revise_without_one_inherits():
    """`Prompt.create` takes the format explicitly (default "mustache"); None there is not a format,
    while a revision leaves it out with None."""
    refused(None, lambda: create(template_format=None), kind=Invalid, code="INVALID_TEMPLATE_FORMAT")
    prompt = given(created(template="{{ a }}", template_format="plain"))

    with by():
        prompt.revise(1, template_format=None, message="same format")

    assert then(prompt)[0][1]["template_format"] == "plain"


def test_revise_inherits_the_template_format():
    prompt = given(created(template="{{#each x}} {{ a }}", template_format="plain"))

    with by():
        prompt.revise(1, template="{{#each y}} {{ b }}")

    ((_, event),) = then(prompt)
    assert (event["template"], event["template_format"], event["variables"]) == ("{{#each y}} {{ b }}", "plain",
                                                                                 ["b"])


def test_revise_can_switch_the_format_and_the_inherited_content_is_checked_again():
    prompt = given(created(template="Hi {{ a }}", template_format="plain"))

    with by():
        prompt.revise(1, template_format="mustache")

    ((_, event),) = then(prompt)
    assert (event["template"], event["template_format"], event["variables"]) == ("Hi {{ a }}", "mustache", ["a"])

    plain = given(created(template="{{#each y}} {{ a }}", template_format="plain"))
    refused(plain, lambda: plain.revise(1, template_format="mustache"), kind=Invalid, code="INVALID_TEMPLATE")


def test_a_chat_prompt_in_plain_format():
    messages = [{"role": "user", "content": "{{#each x}} {{ q }}"}]

    ((_, event),) = then(create(template=None, type="chat", messages=messages, template_format="plain"))

    assert (event["messages"], event["template_format"], event["variables"]) == (messages, "plain", ["q"])


# -- typed variable schema ---------------------------------------------------------------------------


def test_a_declared_schema_is_recorded_with_every_key_filled_in_declared_order():
    ((_, event),) = then(create(template=SCHEMA_TEMPLATE, variables=SCHEMA))

    assert event["variables"] == ["verbose", "topic", "question"]
    assert event["variable_schema"] == CLEAN_SCHEMA


def test_a_name_used_only_inside_a_section_may_be_declared_but_is_not_a_variable_otherwise():
    ((_, declared),) = then(create(template="{{#verbose}}Explain {{topic}}{{/verbose}}",
                                   variables=[{"name": "verbose", "type": "boolean"}, {"name": "topic"}]))
    ((_, inferred),) = then(create(template="{{#verbose}}Explain {{topic}}{{/verbose}}"))
    ((_, without),) = then(create(template="{{#verbose}}Explain {{topic}}{{/verbose}}",
                                  variables=[{"name": "verbose", "type": "boolean"}]))

    assert declared["variables"] == ["verbose", "topic"]
    assert inferred["variables"] == ["verbose"]
    assert (without["variables"], [s["name"] for s in without["variable_schema"]]) == (["verbose"], ["verbose"])


@pytest.mark.parametrize(("variables", "code", "details"), [
    ([{"name": "verbose", "type": "boolean"}, {"name": "topic"}, {"name": "question"}, {"name": "extra"}],
     "VARIABLES_MISMATCH", {"undeclared": [], "unused": ["extra"]}),
    ([{"name": "topic"}, {"name": "verbose"}], "VARIABLES_MISMATCH", {"undeclared": ["question"], "unused": []}),
    ([{"name": "verbose", "type": "date"}, {"name": "question"}], "INVALID_VARIABLES",
     {"index": 0, "variable": "verbose", "problem": "invalid_type",
      "allowed": ["string", "number", "boolean", "list", "object"]}),
    ([{"name": "verbose", "type": "boolean", "default": "no"}, {"name": "question"}], "INVALID_VARIABLES",
     {"index": 0, "variable": "verbose", "problem": "default_wrong_type", "expected": "boolean", "got": "string"}),
    ([{"name": "verbose", "required": True, "default": "x"}, {"name": "question"}], "INVALID_VARIABLES",
     {"index": 0, "variable": "verbose", "problem": "default_with_required"}),
    ([{"name": "verbose"}, "question"], "INVALID_VARIABLES", {"problem": "mixed"}),
    ([{"name": "verbose"}, {"name": "question"}, {"name": "question"}], "INVALID_VARIABLES",
     {"problem": "duplicate", "duplicates": ["question"]}),
    ([{"name": "verbose", "colour": "red"}, {"name": "question"}], "INVALID_VARIABLES",
     {"index": 0, "problem": "unknown_keys", "keys": ["colour"],
      "allowed": ["name", "type", "required", "default", "description"]}),
], ids=["unused", "undeclared", "bad-type", "default-type", "required-default", "mixed", "duplicate", "unknown-key"])
def test_a_bad_schema_is_refused(variables, code, details):
    refused(None, lambda: create(template=SCHEMA_TEMPLATE, variables=variables), kind=Invalid, code=code,
            details=details)


def test_revise_with_new_content_keeps_the_schema_of_still_used_names_and_adds_new_ones_as_required_strings():
    prompt = given(created(template="{{a}} {{b}}", variables=[
        {"name": "a", "type": "number", "description": "count"}, {"name": "b", "type": "boolean", "default": True}]))

    with by():
        prompt.revise(1, template="{{c}} then {{a}}")

    ((_, event),) = then(prompt)
    assert event["variables"] == ["c", "a"]
    assert event["variable_schema"] == [
        required_string("c"),
        {"name": "a", "type": "number", "required": True, "default": None, "description": "count"},
    ]


def test_revise_chat_messages_keeps_the_schema_of_still_used_names():
    prompt = given(chat_created(variables=[{"name": "product", "type": "object"}, {"name": "tone", "default": "kind"},
                                           {"name": "question"}]))

    with by():
        prompt.revise(1, messages=[{"role": "user", "content": "{{tone}} {{fresh}}"}])

    ((_, event),) = then(prompt)
    assert event["variable_schema"] == [
        {"name": "tone", "type": "string", "required": False, "default": "kind", "description": ""},
        required_string("fresh"),
    ]


def test_revise_without_content_keeps_the_whole_schema():
    prompt = given(created(template=SCHEMA_TEMPLATE, variables=SCHEMA))

    with by():
        prompt.revise(1, tags=["t"], message="tags only")

    ((_, event),) = then(prompt)
    assert (event["variables"], event["variable_schema"]) == (["verbose", "topic", "question"], CLEAN_SCHEMA)


def test_revise_with_new_content_and_no_schema_keeps_names_only():
    prompt = given(created(template="{{a}}"))

    with by():
        prompt.revise(1, template="{{b}}")

    ((_, event),) = then(prompt)
    assert (event["variables"], event["variable_schema"]) == (["b"], None)


def test_revise_with_declared_names_drops_the_schema_and_with_a_schema_replaces_it():
    base = created(template="{{a}}", variables=[{"name": "a", "type": "number"}])

    names = given(after(base, lambda p: p.revise(1, template="{{b}}", variables=["b"])))
    schema = given(after(base, lambda p: p.revise(1, variables=[{"name": "a", "type": "list"}])))

    assert (names.versions[-1]["variables"], names.versions[-1]["variable_schema"]) == (["b"], None)
    assert schema.versions[-1]["variable_schema"] == [
        {"name": "a", "type": "list", "required": True, "default": None, "description": ""}]


def test_revise_with_new_content_keeps_a_declared_name_still_used_inside_a_section():
    prompt = given(created(template=SCHEMA_TEMPLATE, variables=SCHEMA))

    with by():
        prompt.revise(1, template=SCHEMA_TEMPLATE + " Thanks.")

    ((_, event),) = then(prompt)
    assert event["variables"] == ["verbose", "topic", "question"]
    assert event["variable_schema"] == CLEAN_SCHEMA
    version = prompt.versions[-1]
    assert check_values(version["variable_schema"], version["variables"],
                        {"verbose": True, "topic": "tides", "question": "why?"}) == {
        "verbose": True, "topic": "tides", "question": "why?"}


# -- rename ------------------------------------------------------------------------------------------


def test_rename_emits_renamed_with_from_and_to_names():
    prompt = given(created())

    with by("user:bob", REQUEST):
        assert prompt.rename("  support / billing /refund reply ") == "support/billing/refund reply"

    assert then(prompt) == [("Renamed", {
        "org_id": ORG_ID, "from_name": "greeting", "to_name": "support/billing/refund reply", "actor": "user:bob",
        "request_id": REQUEST,
    })]
    assert prompt.name == "support/billing/refund reply"


def test_a_renamed_prompt_replays_with_its_new_name_and_keeps_its_versions():
    base = after(created(), lambda p: p.rename("support / billing"), request="r1")
    base = after(base, lambda p: p.rename("archive/old"), request="r2")
    prompt = given(base)

    assert prompt.name == "archive/old"
    assert (attrs(base[1])["from_name"], attrs(base[1])["to_name"]) == ("greeting", "support/billing")
    assert (attrs(base[2])["from_name"], attrs(base[2])["to_name"]) == ("support/billing", "archive/old")
    assert prompt.latest_version == 1 and prompt.versions[0]["template"] == "Hello {{name}}"


@pytest.mark.parametrize("name", ["greeting", "  greeting ", "greeting\u0020"])
def test_rename_to_the_same_name_emits_nothing(name):
    prompt = given(created())

    with by():
        assert prompt.rename(name) is None

    assert then(prompt) == []


def test_rename_that_changes_only_the_case_is_a_rename():
    prompt = given(created())

    with by():
        assert prompt.rename("Greeting") == "Greeting"

    assert [(n, e["from_name"], e["to_name"]) for n, e in then(prompt)] == [("Renamed", "greeting", "Greeting")]


def test_rename_an_archived_prompt_is_refused():
    prompt = given(after(created(), lambda p: p.archive(), request="r1"))

    refused(prompt, lambda: prompt.rename("other"), kind=Conflict, code="PROMPT_ARCHIVED")
    assert prompt.name == "greeting"


@pytest.mark.parametrize("name", ["", "  ", "/x", "x/", "a//b", "a/ /b", "a/../b", "./a", "..", "a\tb", "a\nb",
                                  "a/\x7fb", "x" * 201, None, 42])
def test_rename_to_a_bad_name_is_refused(name):
    prompt = given(created())

    refused(prompt, lambda: prompt.rename(name), kind=Invalid, code="INVALID_NAME")
    assert prompt.name == "greeting"


# -- upcasting v1 events -------------------------------------------------------------------------------


def mapper() -> Mapper:
    """The application's own mapper (its transcoder decodes the stored UUIDs and datetimes)."""
    return BaseApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper


def legacy_stream(name: str) -> list[StoredEvent]:
    """A prompt's stored events exactly as code before prompt model v2 wrote them (tests/fixtures/legacy_v1),
    read without writing to the fixture."""
    prompt_id = UUID(json.loads((FIXTURE.parent / "expected.json").read_text())["prompts"][name])
    db = sqlite3.connect(f"file:{FIXTURE}?mode=ro&immutable=1", uri=True)  # writes nothing, not even -shm/-wal
    try:
        rows = db.execute("select originator_version, topic, state from stored_events where originator_id = ? "
                          "order by originator_version", (prompt_id.hex,)).fetchall()
    finally:
        db.close()
    assert rows, f"no stored events for {name}"
    return [StoredEvent(originator_id=prompt_id, originator_version=v, topic=t, state=bytes(s)) for v, t, s in rows]


def test_created_and_revised_are_at_class_version_2():
    assert (Prompt.Created.class_version, Prompt.Revised.class_version) == (2, 2)


def test_upcast_created_v1_v2_makes_a_plain_text_prompt():
    state = {"org_id": ORG_ID, "name": "old", "template": "Hi {{ x }}", "variables": ["x"], "model_config": {},
             "tags": [], "message": "", "actor": ACTOR, "request_id": "r", "request_hash": ""}

    Prompt.Created.upcast_v1_v2(state)

    assert state == {"org_id": ORG_ID, "name": "old", "template": "Hi {{ x }}", "variables": ["x"],
                     "model_config": {}, "tags": [], "message": "", "actor": ACTOR, "request_id": "r",
                     "request_hash": "", "type": "text", "messages": None, "variable_schema": None,
                     "template_format": "plain"}


def test_upcast_revised_v1_v2_adds_the_content_fields_but_no_type():
    state = {"version": 2, "org_id": ORG_ID, "template": "{{#each x}}", "variables": [], "model_config": {},
             "tags": [], "message": "", "actor": ACTOR, "request_id": "r", "idempotency": "", "request_hash": ""}

    Prompt.Revised.upcast_v1_v2(state)

    assert {k: state[k] for k in ("messages", "variable_schema", "template_format")} == {
        "messages": None, "variable_schema": None, "template_format": "plain"}
    assert "type" not in state


def test_stored_v1_created_and_revised_events_load_as_plain_text_versions():
    stored = legacy_stream("support-reply")
    assert [s.topic.rpartition(".")[2] for s in stored[:2]] == ["Created", "Revised"]
    assert b"class_version" not in stored[0].state and b"template_format" not in stored[0].state

    codec = mapper()
    events = [codec.to_domain_event(s) for s in stored]

    assert isinstance(events[0], Prompt.Created) and isinstance(events[1], Prompt.Revised)
    created_ = attrs(events[0])
    assert {k: created_[k] for k in ("name", "template", "variables", "type", "messages", "variable_schema",
                                     "template_format")} == {
        "name": "support-reply", "template": "You support {{product}}. Answer: {{question}}",
        "variables": ["product", "question"], "type": "text", "messages": None, "variable_schema": None,
        "template_format": "plain"}
    revised = attrs(events[1])
    assert (revised["version"], revised["messages"], revised["variable_schema"], revised["template_format"]) == (
        2, None, None, "plain")

    prompt = given(events)
    assert prompt.type == "text"
    assert prompt.name == "support-reply"
    assert [(v["version"], v["type"], v["messages"], v["variable_schema"], v["template_format"])
            for v in prompt.versions] == [(1, "text", None, None, "plain"), (2, "text", None, None, "plain"),
                                          (3, "text", None, None, "plain")]
    assert prompt.versions[2]["template"] == "You warmly support {{product}}.\nAnswer: {{question}}"
    assert prompt.labels == {"production": 3}


def test_a_legacy_prompt_can_be_revised_and_keeps_its_plain_format():
    prompt = given([mapper().to_domain_event(s) for s in legacy_stream("Summariser")])

    with by():
        prompt.revise(prompt.latest_version, template="Summarise {{text}} {{#each x}}")

    ((_, event),) = then(prompt)
    assert (event["template_format"], event["variables"]) == ("plain", ["text"])


def test_a_version_2_event_is_not_upcast():
    """The upcasters run only for version-1 state: a stored chat/mustache event keeps its content."""
    codec = mapper()
    original = chat_created(variables=[{"name": "product"}, {"name": "tone"}, {"name": "question"}])
    stored = codec.to_stored_event(original[0])
    assert b'"class_version":2' in stored.state

    loaded = codec.to_domain_event(stored)

    assert attrs(loaded) == attrs(original[0])
    assert (loaded.type, loaded.template_format) == ("chat", "mustache")


# -- replay of random v2 histories -----------------------------------------------------------------

#: Valid texts of each format, then one that the other format (or both) refuses.
TEXTS = {
    "mustache": ["Hi {{a}}", "{{#s}}{{b}} {{.}}{{/s}} {{a}}", "{{^s}}none {{c}}{{/s}}", "{{#each x}}"],
    "plain": ["Hi {{ a }}", "{{a}}{{c}}", "{{#each x}} {{ b }} {{CGI-1.out}}"],
}
VARIABLES = [None, None, ["a"], [{"name": "a", "type": "number"}], [{"name": "b", "default": "x"}, {"name": "a"}]]


def _random_messages(rng: random.Random, fmt: str, valid: bool = False) -> list:
    texts = TEXTS[fmt][:2] if valid else TEXTS[fmt]
    out = [{"role": rng.choice(["system", "user", "assistant"]), "content": rng.choice(texts)}
           for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.5:
        out.insert(rng.randint(0, len(out)), {"type": "placeholder", "name": rng.choice(["history", "examples"])})
    return out


def _random_command(rng: random.Random, prompt: Prompt):
    if prompt.archived and rng.random() < 0.6:
        return prompt.restore
    kind = rng.choice(["revise", "revise", "revise", "revise", "move", "rename", "remove", "archive", "restore"])
    latest = prompt.latest_version
    if kind == "revise":
        base = latest if rng.random() < 0.9 else rng.randint(1, latest + 1)
        fmt = rng.choice([None, None, "mustache", "plain"])
        content_fmt = fmt or prompt.versions[-1]["template_format"]
        content = {}
        if rng.random() < 0.6:
            if (prompt.type == "chat") != (rng.random() < 0.1):
                content["messages"] = _random_messages(rng, content_fmt)
            else:
                content["template"] = rng.choice(TEXTS[content_fmt])
        variables = rng.choice(VARIABLES) if rng.random() < 0.4 else None
        tags = rng.choice([None, ["x"], []])
        return lambda: prompt.revise(base, variables=variables, tags=tags, template_format=fmt,
                                     message=rng.choice(["", "m"]), **content)
    if kind == "move":
        label, version = rng.choice(["production", "staging"]), rng.randint(0, latest + 1)
        return lambda: prompt.move_label(label, version, rng.choice([None, 0, prompt.labels.get(label)]))
    if kind == "remove":
        label = rng.choice(["production", "staging"])
        return lambda: prompt.remove_label(label, None)
    if kind == "rename":
        name = rng.choice(["greeting", "support/greeting", " support / billing ", "a//b", "Greeting", "x/../y"])
        return lambda: prompt.rename(name)
    if kind == "archive":
        return prompt.archive
    return prompt.restore


def _state(prompt: Prompt) -> tuple:
    return (prompt.id, prompt.version, prompt.org_id, prompt.name, prompt.type, prompt.versions, prompt.labels,
            prompt.archived, prompt.request_hash, prompt.idempotent_revisions)


@pytest.mark.parametrize("seed", range(40))
def test_replaying_random_v2_histories_rebuilds_the_live_state(seed):
    rng = random.Random(seed)
    chat = rng.random() < 0.5
    fmt = rng.choice(["mustache", "plain"])
    if chat:
        live = create(template=None, type="chat", messages=_random_messages(rng, fmt, valid=True),
                      template_format=fmt)
    else:
        live = create(template=rng.choice(TEXTS[fmt][:2]), template_format=fmt)
    events = history(live)
    refusals = 0

    for _ in range(60):
        command = _random_command(rng, live)
        before = live.version
        try:
            with by(ACTOR, f"r{len(events)}"):
                command()
        except DomainError:
            refusals += 1
            assert live.version == before, "a refused command emitted an event"
        events += history(live)
        assert live.type == ("chat" if chat else "text")
        assert all(v["type"] == live.type for v in live.versions)

    rebuilt = replay(events)
    codec = mapper()
    reloaded = replay(codec.to_domain_event(codec.to_stored_event(e)) for e in events)

    assert isinstance(rebuilt, Prompt) and isinstance(reloaded, Prompt)
    assert _state(rebuilt) == _state(live) == _state(reloaded)
    assert [v["version"] for v in rebuilt.versions] == list(range(1, rebuilt.latest_version + 1))
    assert 0 < refusals < 60
