"""Composition (domain.composition.resolve): includes inlined by position, what was used, the composed
variables and schema, and every refusal with its details. The lookup is a tiny in-memory catalogue."""
from __future__ import annotations

from typing import Any

import pytest

from domain.composition import MAX_DEPTH, Target, has_includes, resolve
from domain.errors import DomainError, Invalid
from domain.template import Include, check_values, includes_of, render_messages, render_text, variables_of


def version(template: str | None = None, *, fmt: str = "mustache", schema: list | None = None,
            messages: list | None = None) -> dict[str, Any]:
    """A stored version's content (as Prompt.versions holds it)."""
    if messages is not None:
        texts = [m["content"] for m in messages if "content" in m]
        kind = "chat"
    else:
        texts = [template]
        kind = "text"
    names = list(dict.fromkeys(n for t in texts for n in variables_of(t, fmt)))
    if schema is not None:
        names = [s["name"] for s in schema]
    return {"type": kind, "template": template if kind == "text" else "", "messages": messages,
            "template_format": fmt, "variables": names, "variable_schema": schema}


class Catalogue:
    """name -> (versions 1..n, labels); the lookup the application would give `resolve`."""

    def __init__(self, **prompts: tuple[list[dict], dict[str, int]]):
        self.prompts = dict(prompts)
        self.calls: list[Include] = []

    def add(self, name: str, *versions: dict, labels: dict[str, int] | None = None) -> "Catalogue":
        self.prompts[name] = (list(versions), {"production": len(versions)} if labels is None else labels)
        return self

    def target(self, name: str, number: int, label: str | None) -> Target:
        v = self.prompts[name][0][number - 1]
        return Target(f"id:{name}", name, number, label, v["type"], v["template"], v["messages"],
                      v["template_format"], list(v["variables"]), v["variable_schema"])

    def __call__(self, include: Include) -> Target | None:
        self.calls.append(include)
        if include.name not in self.prompts:
            return None
        versions, labels = self.prompts[include.name]
        if include.version is not None:
            return self.target(include.name, include.version, None) if include.version <= len(versions) else None
        label = include.selector_label
        if label not in labels:
            return None
        return self.target(include.name, labels[label], label)


def root(template: str | None = None, *, name: str = "root", number: int = 1, **content: Any) -> Target:
    v = version(template, **content)
    return Target(f"id:{name}", name, number, None, v["type"], v["template"], v["messages"], v["template_format"],
                  list(v["variables"]), v["variable_schema"])


def dep(name: str, number: int, label: str | None) -> dict[str, Any]:
    return {"name": name, "prompt_id": f"id:{name}", "version": number, "label": label}


def never(include: Include) -> Target | None:
    raise AssertionError(f"the lookup was called for {include.tag}")


def composition_error(target: Target, lookup, code: str, details: dict[str, Any] | None = None) -> DomainError:
    with pytest.raises(Invalid) as info:
        resolve(target, lookup)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value.message}"
    if details is not None:
        assert info.value.details == details
    return info.value


def spec(name: str, kind: str = "string", required: bool = True, default: Any = None, description: str = "") -> dict:
    return {"name": name, "type": kind, "required": required, "default": default, "description": description}


# -- nothing to include: the lookup is never called ------------------------------------------------------


@pytest.mark.parametrize("target", [
    root("Hello {{name}}, {{#items}}{{.}}{{/items}}"),
    root("plain {{ name }} and a literal {{> footer}} {{#each x}}", fmt="plain"),
    root(messages=[{"role": "system", "content": "Be {{tone}}"}, {"type": "placeholder", "name": "history"}]),
    root(messages=[{"role": "user", "content": "{{> footer}} stays literal"}], fmt="plain"),
], ids=["mustache-text", "plain-text", "chat", "plain-chat"])
def test_resolve_without_includes_never_calls_the_lookup(target):
    resolution = resolve(target, never)

    assert (resolution.template, resolution.messages) == (
        (target.template, None) if target.type == "text" else (None, target.messages))
    assert resolution.dependencies == []
    assert resolution.variables == target.variables
    assert resolution.variable_schema is None
    assert not has_includes(target.template if target.type == "text" else None, target.messages,
                            target.template_format)


# -- text includes ---------------------------------------------------------------------------------


def greetings() -> Catalogue:
    return Catalogue().add("greeting", version("Hi v1"), version("Hi {{name}} v2"), version("Hi v3"),
                           labels={"production": 2, "staging": 3})


def test_an_include_without_selector_is_the_production_version():
    lookup = greetings()

    resolution = resolve(root("Dear {{name}}: {{> greeting}}!"), lookup)

    assert resolution.template == "Dear {{name}}: Hi {{name}} v2!"
    assert resolution.dependencies == [dep("greeting", 2, "production")]
    assert resolution.variables == ["name"]
    assert [(i.name, i.label, i.version, i.selector_label) for i in lookup.calls] == [
        ("greeting", None, None, "production")]


def test_an_include_through_a_label_in_any_case():
    resolution = resolve(root("{{>greeting@Staging}}"), greetings())

    assert resolution.template == "Hi v3"
    assert resolution.dependencies == [dep("greeting", 3, "staging")]


def test_an_include_of_a_version_names_no_label():
    resolution = resolve(root("{{ > greeting#1 }} then"), greetings())

    assert resolution.template == "Hi v1 then"
    assert resolution.dependencies == [dep("greeting", 1, None)]


def test_an_include_by_folder_name():
    lookup = Catalogue().add("support/billing/footer", version("-- billing"))

    resolution = resolve(root("Answer.\n{{> support/billing/footer}}\nEnd"), lookup)

    assert resolution.template == "Answer.\n-- billing\nEnd", "inlined by position: the line keeps its newline"
    assert resolution.dependencies == [dep("support/billing/footer", 1, "production")]


def test_a_repeated_include_is_inlined_each_time_and_listed_once():
    lookup = Catalogue().add("sig", version("[{{who}}]"))

    resolution = resolve(root("{{> sig}} a {{> sig}} b {{>sig@production}}"), lookup)

    assert resolution.template == "[{{who}}] a [{{who}}] b [{{who}}]"
    assert resolution.dependencies == [dep("sig", 1, "production")]
    assert resolution.variables == ["who"]


def test_the_same_version_through_a_label_and_by_number_is_listed_for_each_way():
    resolution = resolve(root("{{> greeting}} {{> greeting#2}} {{> greeting@staging}} {{> greeting}}"), greetings())

    assert resolution.template == "Hi {{name}} v2 Hi {{name}} v2 Hi v3 Hi {{name}} v2"
    assert resolution.dependencies == [dep("greeting", 2, "production"), dep("greeting", 2, None),
                                       dep("greeting", 3, "staging")]


def test_an_include_inside_a_section_is_inlined_inside_it():
    lookup = Catalogue().add("details", version("(details: {{#facts}}{{.}};{{/facts}})"))

    resolution = resolve(root("Start {{#verbose}}{{> details}} {{/verbose}}end"), lookup)

    assert resolution.template == "Start {{#verbose}}(details: {{#facts}}{{.}};{{/facts}}) {{/verbose}}end"
    assert resolution.dependencies == [dep("details", 1, "production")]
    assert render_text(resolution.template, {"verbose": True, "facts": ["a", "b"]}) == "Start (details: a;b;) end"
    assert render_text(resolution.template, {"verbose": False}) == "Start end"


def test_nested_includes_are_inlined_recursively_and_listed_in_first_use_order():
    lookup = (Catalogue().add("a", version("A[{{> c}}|{{> b}}]")).add("b", version("B{{y}}"))
              .add("c", version("C{{z}}")))

    resolution = resolve(root("{{> b}} {{> a}} {{x}}"), lookup)

    assert resolution.template == "B{{y}} A[C{{z}}|B{{y}}] {{x}}"
    assert resolution.dependencies == [dep("b", 1, "production"), dep("a", 1, "production"),
                                       dep("c", 1, "production")]
    assert resolution.variables == ["y", "z", "x"]


def test_dependencies_are_only_what_was_used():
    lookup = (greetings().add("unused", version("never")).add("a", version("A"), version("A2 {{> greeting#3}}"),
                                                              labels={"production": 1, "beta": 2}))

    resolution = resolve(root("{{> a}}"), lookup)

    assert resolution.dependencies == [dep("a", 1, "production")], "a@beta's include is not used"
    assert [i.name for i in lookup.calls] == ["a"]


def test_the_include_inside_a_comment_is_not_the_one_inlined():
    """`{{! see {{> footer}} }}` is a comment up to its first `}}`: the text `{{> footer}}` inside it
    is not an include, so the real include after it is the one replaced."""
    lookup = Catalogue().add("footer", version("FOOT"))
    text = "{{! see {{> footer}} }} {{> footer}}"

    resolution = resolve(root(text), lookup)

    assert resolution.template == "{{! see {{> footer}} }} FOOT"
    assert resolution.dependencies == [dep("footer", 1, "production")]
    assert len(lookup.calls) == 1
    assert render_text(resolution.template, {}) == " }} FOOT"


# -- chat roots ---------------------------------------------------------------------------------------


def test_a_chat_root_inlines_includes_in_its_messages_and_keeps_placeholders():
    lookup = Catalogue().add("persona", version("a {{tone}} assistant")).add("rules", version("never {{taboo}}"))
    messages = [
        {"role": "system", "content": "You are {{> persona}}. {{> rules}}."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{question}} ({{> rules}})"},
    ]

    resolution = resolve(root(messages=messages), lookup)

    assert resolution.template is None
    assert resolution.messages == [
        {"role": "system", "content": "You are a {{tone}} assistant. never {{taboo}}."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{question}} (never {{taboo}})"},
    ]
    assert messages[0]["content"] == "You are {{> persona}}. {{> rules}}.", "the root's messages are not changed"
    assert resolution.dependencies == [dep("persona", 1, "production"), dep("rules", 1, "production")]
    assert resolution.variables == ["tone", "taboo", "question"]
    assert render_messages(resolution.messages, {"tone": "calm", "taboo": "lie", "question": "Why?"},
                           {"history": [{"role": "assistant", "content": "Hi"}]}) == [
        {"role": "system", "content": "You are a calm assistant. never lie."},
        {"role": "assistant", "content": "Hi"},
        {"role": "user", "content": "Why? (never lie)"},
    ]


# -- formats ------------------------------------------------------------------------------------------


def test_a_mustache_root_including_a_plain_prompt_renders_the_inlined_text_as_mustache():
    lookup = Catalogue().add("legacy", version("Regards, {{ sender }}", fmt="plain"))

    resolution = resolve(root("{{#items}}* {{.}}\n{{/items}}{{> legacy}}"), lookup)

    assert resolution.template == "{{#items}}* {{.}}\n{{/items}}Regards, {{ sender }}"
    assert resolution.variables == ["items", "sender"]
    assert render_text(resolution.template, {"items": ["a", "b"], "sender": "Ann"}) == "* a\n* b\nRegards, Ann"


def test_an_included_plain_text_that_is_not_mustache_makes_the_composed_text_invalid():
    lookup = Catalogue().add("legacy", version("{{#each projects}}{{ name }}", fmt="plain"))

    error = composition_error(root("Projects: {{> legacy}}"), lookup, "INVALID_TEMPLATE")

    assert error.details["tag"] == "{{#each projects}}"
    assert error.details["offset"] == len("Projects: ")


def test_an_included_plain_text_can_unbalance_the_roots_sections():
    lookup = Catalogue().add("closer", version("x {{/s}} y", fmt="plain"))

    error = composition_error(root("{{#s}}{{> closer}}{{/s}}"), lookup, "INVALID_TEMPLATE")

    assert error.details["problem"] == "unexpected_close"


def test_a_plain_dependency_cannot_smuggle_an_unresolved_include_into_the_composition():
    lookup = Catalogue().add("legacy", version("Bye {{ name }} {{> other}}", fmt="plain")).add("other", version("O"))

    try:
        resolution = resolve(root("Hi {{> legacy}}"), lookup)
    except DomainError:
        return  # refused at resolve time (and so at write time): fine
    assert includes_of(resolution.template) == [], "the composition still holds an include"


# -- variables and the merged schema -----------------------------------------------------------------


def test_variables_are_those_of_the_composed_text_in_first_use_order():
    lookup = Catalogue().add("x", version("{{b}} {{a}} {{#list}}{{item}}{{/list}}"))

    resolution = resolve(root("{{a}} {{> x}} {{c}}"), lookup)

    assert resolution.variables == ["a", "b", "list", "c"]
    assert resolution.variable_schema is None, "nobody declared a schema: names only"


def test_the_merged_schema_takes_the_roots_declarations_first_then_the_dependencies():
    lookup = (Catalogue()
              .add("x", version("{{b}} {{a}} {{> y}}", schema=[spec("b", "boolean", False, True), spec("a")]))
              .add("y", version("{{c}} {{d}}", schema=[{"name": "c", "type": "list", "required": True,
                                                        "default": None, "description": "cs"},
                                                       spec("d", "number")])))

    resolution = resolve(root("{{a}} {{> x}} {{e}}", schema=[spec("a", "number", description="root's a"),
                                                            spec("e")]), lookup)

    assert resolution.variables == ["a", "b", "c", "d", "e"]
    assert resolution.variable_schema == [
        spec("a", "number", description="root's a"), spec("b", "boolean", False, True),
        spec("c", "list", description="cs"), spec("d", "number"), spec("e"),
    ]


def test_names_nobody_declared_become_required_strings_in_the_merged_schema():
    lookup = Catalogue().add("x", version("{{b}}", schema=[spec("b", "object")])).add("y", version("{{c}}"))

    resolution = resolve(root("{{a}} {{> x}} {{> y}}"), lookup)

    assert resolution.variable_schema == [spec("a"), spec("b", "object"), spec("c")]
    assert check_values(resolution.variable_schema, resolution.variables, {"a": "1", "b": {}, "c": "3"}) == {
        "a": "1", "b": {}, "c": "3"}


SECTION_SCHEMA = [spec("verbose", "boolean", False, False), spec("topic", description="what to explain")]


@pytest.mark.parametrize("text", ["{{#verbose}}Explain {{topic}}{{/verbose}}",
                                  "{{#verbose}}Explain {{topic}}{{/verbose}} {{> footer}}"],
                         ids=["no-includes", "with-an-include"])
def test_the_roots_declared_variables_survive_resolution(text):
    lookup = Catalogue().add("footer", version("--"))
    target = root(text, schema=SECTION_SCHEMA)
    assert target.variables == ["verbose", "topic"]

    resolution = resolve(target, lookup)

    assert resolution.variables == ["verbose", "topic"]
    assert resolution.variable_schema == SECTION_SCHEMA
    assert check_values(resolution.variable_schema, resolution.variables, {"verbose": True, "topic": "tides"}) == {
        "verbose": True, "topic": "tides"}


# -- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "details"), [
    ("{{> nope}}", {"include": "{{> nope}}", "name": "nope", "label": "production", "version": None,
                    "path": ["root"]}),
    ("{{> greeting@canary}}", {"include": "{{> greeting@canary}}", "name": "greeting", "label": "canary",
                               "version": None, "path": ["root"]}),
    ("{{> greeting#4}}", {"include": "{{> greeting#4}}", "name": "greeting", "label": None, "version": 4,
                          "path": ["root"]}),
    ("{{> support/nope@Beta}}", {"include": "{{> support/nope@Beta}}", "name": "support/nope", "label": "beta",
                                 "version": None, "path": ["root"]}),
], ids=["name", "label", "version", "folder-name"])
def test_a_missing_dependency_is_refused_with_what_was_missing(text, details):
    composition_error(root(f"ok {{{{> greeting}}}} {text}"), greetings(), "DEPENDENCY_NOT_FOUND", details)


def test_a_missing_nested_dependency_names_the_path_to_it():
    lookup = greetings().add("a", version("A {{> b}}")).add("b", version("B {{> greeting@gone}}"))

    composition_error(root("{{> a}}"), lookup, "DEPENDENCY_NOT_FOUND", {
        "include": "{{> greeting@gone}}", "name": "greeting", "label": "gone", "version": None,
        "path": ["root", "a", "b"]})


def test_a_production_label_that_is_not_set_is_a_missing_dependency():
    lookup = Catalogue().add("draft", version("D"), labels={})

    composition_error(root("{{> draft}}"), lookup, "DEPENDENCY_NOT_FOUND", {
        "include": "{{> draft}}", "name": "draft", "label": "production", "version": None, "path": ["root"]})
    assert resolve(root("{{> draft#1}}"), lookup).template == "D"


def test_a_cycle_is_refused_with_the_full_path():
    lookup = Catalogue().add("a", version("A {{> b}}")).add("b", version("B {{> a}}"))

    composition_error(root("A {{> b}}", name="a"), lookup, "COMPOSITION_CYCLE", {"path": ["a", "b", "a"]})
    composition_error(root("{{> a}}"), lookup, "COMPOSITION_CYCLE", {"path": ["root", "a", "b", "a"]})


@pytest.mark.parametrize("text", ["me {{> root}}", "me {{> root#2}}", "me {{> root@staging}}"],
                         ids=["production", "other-version", "label"])
def test_a_self_include_is_a_cycle_whatever_version_it_names(text):
    lookup = Catalogue().add("root", version("v1"), version("v2"), labels={"production": 1, "staging": 2})

    composition_error(root(text), lookup, "COMPOSITION_CYCLE", {"path": ["root", "root"]})


def chain(levels: int) -> Catalogue:
    """d1 includes d2 ... includes d<levels>, which includes nothing."""
    lookup = Catalogue()
    for i in range(1, levels + 1):
        lookup.add(f"d{i}", version(f"D{i}" + (f" {{{{> d{i + 1}}}}}" if i < levels else " {{v}}")))
    return lookup


def test_five_levels_of_includes_are_accepted():
    assert MAX_DEPTH == 5

    resolution = resolve(root("R {{> d1}}"), chain(5))

    assert resolution.template == "R D1 D2 D3 D4 D5 {{v}}"
    assert resolution.dependencies == [dep(f"d{i}", 1, "production") for i in range(1, 6)]
    assert resolution.variables == ["v"]


def test_six_levels_of_includes_are_too_deep():
    composition_error(root("R {{> d1}}"), chain(6), "COMPOSITION_TOO_DEEP", {
        "path": ["root", "d1", "d2", "d3", "d4", "d5", "d6"], "max_depth": 5})


def test_the_depth_limit_can_be_lowered():
    with pytest.raises(Invalid) as info:
        resolve(root("R {{> d1}}"), chain(2), max_depth=1)

    assert (info.value.code, info.value.details) == ("COMPOSITION_TOO_DEEP",
                                                     {"path": ["root", "d1", "d2"], "max_depth": 1})
    assert resolve(root("R {{> d1}}"), chain(1), max_depth=1).template == "R D1 {{v}}"


def test_including_a_chat_prompt_is_refused():
    lookup = Catalogue().add("chatty", version(messages=[{"role": "user", "content": "hi"}]))

    composition_error(root("{{> chatty}}"), lookup, "COMPOSITION_TYPE_MISMATCH",
                      {"include": "{{> chatty}}", "type": "chat"})
    composition_error(root(messages=[{"role": "user", "content": "x {{> chatty}}"}]), lookup,
                      "COMPOSITION_TYPE_MISMATCH", {"include": "{{> chatty}}", "type": "chat"})


def test_a_refusal_deep_in_a_chat_root_names_the_path():
    lookup = Catalogue().add("a", version("A {{> nope#2}}"))

    composition_error(root(messages=[{"role": "system", "content": "ok"}, {"role": "user", "content": "{{> a}}"}]),
                      lookup, "DEPENDENCY_NOT_FOUND", {"include": "{{> nope#2}}", "name": "nope", "label": None,
                                                       "version": 2, "path": ["root", "a"]})
