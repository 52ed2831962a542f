"""template: prompt model v2 -- formats, variables and schemas, includes, chat messages, rendering.

Each test reads given (the template / declaration / values) -> when (the call) -> then (the result or
the refusal, with its stable code and details)."""
from __future__ import annotations

import random
import time
import unicodedata

import pytest
from pystache.parser import _CommentNode, _EscapeNode, _InvertedNode, _LiteralNode, _PartialNode, _SectionNode
from pystache.parser import parse as pystache_parse

from domain.errors import Invalid
from domain.template import (
    FORMATS,
    MAX_DESCRIPTION,
    MAX_MESSAGES,
    MAX_RENDER_STEPS,
    MAX_SECTION_DEPTH,
    ROLES,
    VARIABLE_TYPES,
    Include,
    _Budget,
    _measure,
    _parse,
    _Renderer,
    check_text,
    check_values,
    clean_messages,
    clean_variables,
    includes_of,
    message_text,
    render_messages,
    render_text,
    variables_of,
)
from domain.values import MAX_RENDERED, MAX_TEMPLATE, MAX_VARIABLES, placeholders, render
from tests.unit.domain_helpers import refused

HANDLEBARS = [
    "{{#each projects}}- {{this.name}}\n{{/each}}",
    "Use the output of {{CGI-1.output}} here.",
    "Ticket {{#123.x#}} is open.",
    "{{ not a name }}",
    "{{#if ready}}go{{/if}}",
    "{{> partial-name}} and {{=<% %>=}}",
    "{{user.0.name}}",
]


def invalid_template(call, problem: str) -> Invalid:
    error = refused(None, call, kind=Invalid, code="INVALID_TEMPLATE")
    assert error.details["problem"] == problem, error.details
    return error


def mismatch(call) -> dict:
    return refused(None, call, kind=Invalid, code="RENDER_VARIABLES_MISMATCH").details


def spec(name: str, type: str = "string", required: bool = True, default=None, description: str = "") -> dict:
    return {"name": name, "type": type, "required": required, "default": default, "description": description}


def test_the_published_constants():
    assert FORMATS == ("mustache", "plain")
    assert VARIABLE_TYPES == ("string", "number", "boolean", "list", "object")
    assert ROLES == ("system", "user", "assistant", "tool")


@pytest.mark.parametrize("call", [
    lambda: check_text("x", "jinja"), lambda: variables_of("x", "Mustache"), lambda: includes_of("x", None),
    lambda: render_text("x", {}, "handlebars"), lambda: clean_messages([{"role": "user", "content": "x"}], "md"),
    lambda: render_messages([{"role": "user", "content": "x"}], {}, {}, ["plain"]),
], ids=["check", "variables", "includes", "render", "messages", "render-messages"])
def test_an_unknown_template_format_is_refused(call):
    error = refused(None, call, kind=Invalid, code="INVALID_TEMPLATE_FORMAT")
    assert error.details["allowed"] == ["mustache", "plain"]


# -- plain: today's semantics, exactly -----------------------------------------------------------


@pytest.mark.parametrize("text", HANDLEBARS)
def test_plain_keeps_handlebars_like_text_valid_and_literal(text):
    # given real-world text that is not mustache, in the plain format
    # when it is checked and rendered
    check_text(text, "plain")
    rendered = render_text(text, {}, "plain")

    # then nothing is refused, nothing is an include, and every brace survives
    assert rendered == text
    assert includes_of(text, "plain") == []
    assert variables_of(text, "plain") == placeholders(text) == []


@pytest.mark.parametrize("text", HANDLEBARS)
def test_mustache_refuses_handlebars_like_text_naming_the_tag(text):
    # given the same text in the mustache format, when it is checked, then it is refused (it would
    # otherwise render as nothing) with the offending tag, its offset and line
    error = refused(None, lambda: check_text(text), kind=Invalid, code="INVALID_TEMPLATE")

    assert error.details["problem"] in {"invalid_name", "set_delimiter", "invalid_include"}
    assert text[error.details["offset"]:].startswith(error.details["tag"])
    assert error.details["line"] >= 1
    refused(None, lambda: variables_of(text), kind=Invalid, code="INVALID_TEMPLATE")
    refused(None, lambda: render_text(text, {}), kind=Invalid, code="INVALID_TEMPLATE")


def test_the_handlebars_refusal_points_at_the_plain_format():
    error = invalid_template(lambda: check_text("Hi\n  {{#each projects}}x{{/each}}"), "invalid_name")

    assert error.details == {"problem": "invalid_name", "tag": "{{#each projects}}", "offset": 5, "line": 2}
    assert '"plain"' in error.message


@pytest.mark.parametrize("template,values", [
    ("Hi {{name}}, {{ name }}! You are {{age}}.", {"name": "Ada", "age": 36}),
    ("{{a}}", {"a": "{{a}}"}),
    ("{{ 1bad }} {x} {{ok}}", {"ok": "yes"}),
    ("static", {}),
    ("{{flag}} {{items}} {{n}} {{nothing}}", {"flag": True, "items": ["a", 1], "n": 1.5, "nothing": None}),
    ("{{#each projects}}{{name}}{{/each}} {{CGI-1.output}} {{#123.x#}} <b>&{{v}}", {"name": "N", "v": "<i>"}),
], ids=["repeats-spacing", "single-pass", "non-placeholders", "static", "str-of-values", "handlebars"])
def test_plain_renders_exactly_as_today(template, values):
    # given a plain template and values for exactly its placeholders
    names = placeholders(template)

    # when rendered by both, then the output is the same as domain.values.render's
    assert variables_of(template, "plain") == names
    assert render_text(template, values, "plain") == render(template, names, values)


def test_plain_renders_a_placeholder_without_a_value_as_empty_text():
    assert render_text("a{{b}}c", {}, "plain") == "ac"


def test_plain_refuses_output_beyond_the_bound():
    # given 20 repeats of a placeholder, when a 60k value is rendered, then 1.2M characters are refused
    template = "{{v}}" * 20
    refused(None, lambda: render_text(template, {"v": "x" * 60_000}, "plain"), kind=Invalid, code="RENDER_TOO_LARGE",
            details={"max": MAX_RENDERED})
    assert len(render_text(template, {"v": "x" * 40_000}, "plain")) == 800_000


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("text,problem", [
    ("a\x00b", "bad_character"), ("a\ud800b", "bad_character"), ("x" * (MAX_TEMPLATE + 1), "too_large"),
    (42, "not_a_string"), (None, "not_a_string"), ("", "empty"), ("  \n\t", "empty"),
], ids=["nul", "surrogate", "oversize", "number", "none", "empty", "blank"])
def test_check_text_refuses_what_no_template_may_be(fmt, text, problem):
    invalid_template(lambda: check_text(text, fmt), problem)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_template_of_exactly_the_maximum_size_is_accepted(fmt):
    check_text("x" * MAX_TEMPLATE, fmt)


def test_a_bad_character_is_located():
    error = invalid_template(lambda: check_text("ok\nthen\x00"), "bad_character")
    assert (error.details["offset"], error.details["line"]) == (7, 2)


# -- mustache: what check_text refuses -------------------------------------------------------------


@pytest.mark.parametrize("text,tag,offset", [
    ("a {{#s}}x", "{{#s}}", 2),  # pystache silently parses this to ['x'], dropping 'a '
    ("{{#a}}{{#b}}x{{/b}}", "{{#a}}", 0),
    ("{{#a}}{{^b}}", "{{^b}}", 6),  # the innermost open section is named
], ids=["drops-text-in-pystache", "outer", "innermost"])
def test_an_unclosed_section_is_refused_naming_it(text, tag, offset):
    error = invalid_template(lambda: check_text(text), "unclosed_section")

    assert (error.details["tag"], error.details["offset"]) == (tag, offset)


def test_a_close_that_does_not_match_names_what_was_expected():
    error = invalid_template(lambda: check_text("{{#a}}\nx{{/b}}"), "mismatched_close")

    assert error.details == {"problem": "mismatched_close", "tag": "{{/b}}", "offset": 8, "line": 2,
                             "expected": "{{/a}}", "open_tag": "{{#a}}", "open_offset": 0}


@pytest.mark.parametrize("text", ["{{/a}}", "x {{/each}}", "{{#a}}{{/a}}{{/a}}"])
def test_a_close_without_an_open_section_is_refused(text):
    invalid_template(lambda: check_text(text), "unexpected_close")


@pytest.mark.parametrize("text", ["{{=<% %>=}}", "{{= x =}}", "{{=a b c=}}", "{{ =| |= }}", "{{=x}}"],
                         ids=["erb", "one-delimiter", "three", "spaced", "no-closing-equals"])
def test_set_delimiter_tags_are_not_supported(text):
    # given set-delimiter tags (pystache crashes on some: KeyError, IndexError), when checked, then refused
    error = invalid_template(lambda: check_text(f"before {text} after"), "set_delimiter")
    assert "not supported" in error.message


@pytest.mark.parametrize("text", ["{{}}", "{{ }}", "{{#}}", "{{^ }}", "{{/}}", "{{>}}", "{{&}}", "{{!}}", "{{!  }}"])
def test_empty_tags_and_comments_are_refused(text):
    invalid_template(lambda: check_text(text), "empty_tag")


@pytest.mark.parametrize("text", ["{{{x}}", "{{{x} } }}", "{{{ }}}", "{{{x y}}}", "{{{{x}}}}", "{{ {{x}} }}"])
def test_a_malformed_triple_mustache_is_refused(text):
    invalid_template(lambda: check_text(text), "invalid_tag")


@pytest.mark.parametrize("text", [
    "{{1a}}", "{{a-b}}", "{{a.}}", "{{.a}}", "{{a..b}}", "{{a b}}", "{{a.0}}", "{{#a b}}{{/a b}}", "{{&a-b}}",
    "{{{a-b}}}", "{{" + "a" * 65 + "}}", "{{a." + "b" * 65 + "}}", "{{é}}", "{{\"k\": 1}}", "{{x\ny}}",
])
def test_tag_names_must_be_dotted_identifiers(text):
    invalid_template(lambda: check_text(text), "invalid_name")


@pytest.mark.parametrize("text", ["{{.}}", "{{#.}}{{/.}}", "{{^x}}{{.}}{{/x}}"])
def test_dot_is_only_a_name_inside_a_section(text):
    invalid_template(lambda: check_text(text), "invalid_name")


@pytest.mark.parametrize("text", [
    "{{a}}", "{{ a }}", "{{\na\n}}", "{{a.b.c}}", "{{_x1}}", "{{" + "a" * 64 + "}}", "{{{a}}}", "{{{ a.b }}}",
    "{{ {a} }}", "{{&a}}", "{{& a }}", "{{! any {{ text }}", "{{#a}}{{.}}{{#.}}{{.}}{{/.}}{{/a}}",
    "{{#a.b}}x{{/a.b}}", "{{^a}}x{{/a}}", "a {{ b", "}} {{", "{{x}}}", "x}}", "{ {a} }",
], ids=lambda t: repr(t)[:30])
def test_valid_mustache_is_accepted(text):
    check_text(text)


def test_sections_nest_to_a_bounded_depth():
    check_text("{{#a}}" * MAX_SECTION_DEPTH + "x" + "{{/a}}" * MAX_SECTION_DEPTH)
    invalid_template(lambda: check_text("{{#a}}" * (MAX_SECTION_DEPTH + 1) + "{{/a}}" * (MAX_SECTION_DEPTH + 1)),
                     "too_deep")


def test_a_brace_without_a_closing_brace_is_literal():
    # given `{{` with no `}}` anywhere after it, when rendered, then it is text, as in Mustache
    assert render_text("{{a}} and {{ b and {{", {"a": "A"}) == "A and {{ b and {{"


def test_a_long_tag_is_shown_shortened_in_the_error():
    error = invalid_template(lambda: check_text("{{" + "x y " * 100 + "}}"), "invalid_name")
    assert len(error.details["tag"]) == 120


@pytest.mark.parametrize("text", [
    "{{" * (MAX_TEMPLATE // 2), " " * (MAX_TEMPLATE - 1) + "x", "{{=a}}" * (MAX_TEMPLATE // 6),
    "}}" * (MAX_TEMPLATE // 2), "{{x" + "}" * (MAX_TEMPLATE - 3), ("{{a}}" + " " * 1000) * 200 + " " * 50_000,
    "{{! x }}" * (MAX_TEMPLATE // 8), "{{a}}\n" * (MAX_TEMPLATE // 6), "{" * MAX_TEMPLATE,
], ids=["opens", "spaces", "equals", "closes", "long-close", "runs", "comments", "tags", "braces"])
def test_checking_is_linear_on_adversarial_text(text):
    # given text on which pystache's tag regex is quadratic (8000 `{{` take it 3.4 s; 262 144 would take
    # minutes), when checked, then it is decided quickly
    started = time.perf_counter()
    try:
        check_text(text)
    except Invalid:
        pass
    assert time.perf_counter() - started < 2.0


# -- variables_of ------------------------------------------------------------------------------------


def test_variables_in_first_use_order_with_the_head_of_dotted_names():
    text = "{{b}} {{{a.x}}} {{&c}} {{b}} {{ a.y.z }} {{! d }} {{> e}}"

    assert variables_of(text) == ["b", "a", "c"]


@pytest.mark.parametrize("text,expected", [
    ("{{#items}}- {{title}}: {{price}}{{/items}}", ["items"]),
    ("{{#items}}{{title}}{{/items}} by {{title}}", ["items", "title"]),
    ("{{title}} {{#items}}{{title}}{{/items}}", ["title", "items"]),
    ("{{#user}}{{user.name}}{{user}}{{/user}}", ["user"]),
    ("{{^items}}No items for {{user}}.{{/items}}", ["items", "user"]),
    ("{{#items}}{{^done}}{{title}}{{/done}}{{/items}}", ["items"]),
    ("{{#a}}{{#b}}{{c}}{{/b}}{{/a}}{{c}}", ["a", "c"]),
    ("{{#a.b}}{{c.d}}{{/a.b}}", ["a"]),
    ("{{#flag}}Explain {{topic}}{{/flag}}", ["flag"]),
], ids=["item-fields", "also-outside-after", "also-outside-before", "own-name", "inverted-has-no-scope",
        "inverted-inside-section", "nested", "dotted-section", "conditional-only-inside"])
def test_names_only_used_inside_a_section_are_item_fields(text, expected):
    # given names inside {{#...}} sections, when variables are listed, then only those also used outside
    # every section (or the section's own name) are top-level variables
    assert variables_of(text) == expected


def test_variables_of_mustache_text_that_is_not_a_template_raises():
    invalid_template(lambda: variables_of("{{#a}}"), "unclosed_section")


def test_a_plain_compatible_template_has_the_same_variables_in_both_formats():
    text = "Hello {{name}}, welcome to {{ place }}. {{name}}"
    assert variables_of(text) == variables_of(text, "plain") == ["name", "place"]


# -- includes ------------------------------------------------------------------------------------


def test_includes_in_order_with_selector_and_exact_tag():
    # given includes of a production, a label (any case) and a version, in a folder and at the top
    text = "A {{> support/greeting}}\nB {{>footer@Staging}} C {{ > legal notice#12 }}"

    # when listed
    found = includes_of(text)

    # then each is named with its selector, and the tag is exactly what was written
    assert found == [
        Include(name="support/greeting", label=None, version=None, tag="{{> support/greeting}}", offset=2),
        Include(name="footer", label="staging", version=None, tag="{{>footer@Staging}}", offset=27),
        Include(name="legal notice", label=None, version=12, tag="{{ > legal notice#12 }}", offset=49),
    ]
    assert all(text[i.offset:i.offset + len(i.tag)] == i.tag for i in found)  # where each tag stands
    assert [i.selector_label for i in found] == ["production", "staging", None]
    assert all(text.count(i.tag) == 1 for i in found)


def test_an_include_is_frozen():
    include = includes_of("{{> a}}")[0]
    with pytest.raises(AttributeError):
        include.name = "b"  # type: ignore[misc]


def test_an_include_written_twice_is_listed_twice_and_includes_in_sections_count():
    # (composition inlines one tag occurrence per listed include)
    text = "{{> a}} {{#s}}{{> a}}{{/s}} {{! {{> not-an-include}} }}"

    assert [i.tag for i in includes_of(text)] == ["{{> a}}", "{{> a}}"]


def test_include_names_are_nfc_and_may_hold_letters_spaces_and_punctuation():
    decomposed = unicodedata.normalize("NFD", "café/menü (v2), draft!")
    include = includes_of("{{> " + decomposed + "@latest}}")[0]

    assert include.name == "café/menü (v2), draft!"
    assert include.label == "latest"


@pytest.mark.parametrize("ref", [
    "a@", "a#", "a#0", "a#01", "a#-1", "a#x", "a#1.5", "a@b#1", "a@@b", "a##1", "@b", "#1", "/a", "a/", "a//b",
    "a /b", "a/ b", "../a", "a/./b", "a@Bad Label", "a@-x", "a@" + "x" * 65, "a" * 201, "a\u200bb", "a{b",
    "a}b", "a#12345678901",
])
def test_a_malformed_include_is_refused(ref):
    error = invalid_template(lambda: check_text("x {{> " + ref + "}}"), "invalid_include")
    assert error.details["offset"] == 2


def test_an_include_name_of_the_maximum_length_is_accepted():
    assert includes_of("{{> " + "a" * 200 + "}}")[0].name == "a" * 200


def test_plain_templates_have_no_includes():
    assert includes_of("{{> a}} {{> b@x}}", "plain") == []


def test_rendering_refuses_an_unresolved_include():
    error = invalid_template(lambda: render_text("Hi {{name}} {{> footer}}", {"name": "x"}), "unresolved_include")
    assert (error.details["tag"], error.details["offset"]) == ("{{> footer}}", 12)


# -- rendering (mustache) ------------------------------------------------------------------------


def test_nothing_is_html_escaped():
    text = "<b>&amp; {{v}} {{{v}}} {{&v}} {{#o}}{{q}}{{/o}}</b>"

    rendered = render_text(text, {"v": "<i>\"'&", "o": {"q": "a < b & c"}})

    assert rendered == "<b>&amp; <i>\"'& <i>\"'& <i>\"'& a < b & c</b>"


def test_dotted_names_walk_objects_and_a_broken_chain_is_empty():
    values = {"user": {"name": "Ada", "address": {"city": "London"}}, "list": [1]}

    assert render_text("{{user.name}} of {{user.address.city}}|{{user.age}}|{{user.name.x}}|{{list.x}}|{{nobody.x}}",
                       values) == "Ada of London||||"


def test_a_section_over_a_list_of_objects_repeats_for_each_item():
    text = "Examples:\n{{#examples}}\nQ: {{question}}\nA: {{answer}}\n{{/examples}}\nNow: {{question}}"
    values = {"examples": [{"question": "2+2?", "answer": "4"}, {"question": "Capital of France?", "answer": "Paris"}],
              "question": "3+3?"}

    assert render_text(text, values) == ("Examples:\nQ: 2+2?\nA: 4\nQ: Capital of France?\nA: Paris\nNow: 3+3?")


def test_a_section_item_falls_back_to_the_outer_values():
    values = {"items": [{"title": "a"}, {"title": "b", "sep": ";"}], "sep": ","}

    assert render_text("{{#items}}{{title}}{{sep}}{{/items}}", values) == "a,b;"


def test_a_section_over_scalars_uses_dot_and_nested_lists():
    values = {"tags": ["x", "y"], "rows": [[1, 2], [3]]}

    assert render_text("{{#tags}}<{{.}}>{{/tags}} {{#rows}}[{{#.}}{{.}}{{/.}}]{{/rows}}", values) == "<x><y> [12][3]"


def test_a_section_over_an_object_or_a_truthy_value_renders_once():
    values = {"user": {"name": "Ada"}, "verbose": True, "topic": "sets", "count": 3, "word": "w"}

    assert render_text("{{#user}}Hi {{name}}.{{/user}}", values) == "Hi Ada."
    assert render_text("{{#verbose}}Explain {{topic}} fully.{{/verbose}}", values) == "Explain sets fully."
    assert render_text("{{#count}}[{{.}}]{{/count}}{{#word}}[{{.}}]{{/word}}", values) == "[3][w]"


@pytest.mark.parametrize("falsy", [None, False, 0, "", [], {}], ids=repr)
def test_a_falsy_or_missing_value_skips_a_section_and_shows_an_inverted_one(falsy):
    text = "{{#x}}yes{{/x}}{{^x}}no{{/x}}"

    assert render_text(text, {"x": falsy}) == "no"
    assert render_text(text, {}) == "no"


@pytest.mark.parametrize("truthy", [True, 1, 0.5, "s", [0], {"k": None}], ids=repr)
def test_a_truthy_value_hides_an_inverted_section(truthy):
    assert render_text("{{^x}}no{{/x}}", {"x": truthy}) == ""


def test_standalone_section_and_comment_lines_disappear():
    text = "Items:\n  {{#items}}\n  - {{.}}\n  {{/items}}\n{{! a note }}\nEnd"

    assert render_text(text, {"items": ["a", "b"]}) == "Items:\n  - a\n  - b\nEnd"


def test_comments_render_as_nothing_and_end_at_the_first_closing_braces():
    assert render_text("a{{! hidden {{x text\n more }}b", {"x": 1}) == "ab"
    assert render_text("a{{! hidden {{x}} text }}b", {"x": 1}) == "a text }}b"


@pytest.mark.parametrize("value,text", [
    (None, ""), (True, "true"), (False, "false"), (3, "3"), (-1.5, "-1.5"), (1e20, "1e+20"), ("", ""),
    (["a", 1, None], '["a", 1, null]'), ({"k": "é"}, '{"k": "é"}'),
], ids=repr)
def test_values_print_as_json_scalars_and_json(value, text):
    assert render_text("{{v}}", {"v": value}) == text


def test_a_name_without_a_value_renders_as_empty_text():
    assert render_text("[{{a}}][{{b.c}}]", {}) == "[][]"


def test_a_plain_compatible_template_renders_the_same_in_both_formats_for_strings():
    text = "Hello {{name}}, welcome to {{ place }}. {{name}}!"
    values = {"name": "Ada", "place": "<London>"}

    assert render_text(text, values) == render_text(text, values, "plain") == "Hello Ada, welcome to <London>. Ada!"


def test_render_is_a_single_pass():
    assert render_text("{{a}}", {"a": "{{b}} {{#x}}"}) == "{{b}} {{#x}}"


def test_mustache_refuses_output_beyond_the_bound():
    template = "{{v}}" * 20
    refused(None, lambda: render_text(template, {"v": "x" * 60_000}), kind=Invalid, code="RENDER_TOO_LARGE",
            details={"max": MAX_RENDERED})
    assert len(render_text(template, {"v": "x" * 40_000})) == 800_000


def test_a_section_over_a_long_list_is_refused_before_the_text_is_built():
    # given a small template whose section multiplies a value, when the product passes the bound, then
    # it is refused quickly (measured, not built)
    values = {"items": list(range(50_000)), "v": "x" * 1_000}
    started = time.perf_counter()

    refused(None, lambda: render_text("{{#items}}{{v}}{{/items}}", values), kind=Invalid, code="RENDER_TOO_LARGE",
            details={"max": MAX_RENDERED})
    assert time.perf_counter() - started < 1.0


def test_nested_sections_that_print_nothing_are_bounded_by_steps():
    # given sections nested over a long list: a billion empty iterations, when rendered, then refused
    error = refused(None, lambda: render_text("{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}", {"a": list(range(1000))}),
                    kind=Invalid, code="RENDER_TOO_LARGE")
    assert error.details["max_steps"] == MAX_RENDER_STEPS


def test_a_render_just_below_the_bound_is_produced():
    assert len(render_text("{{#items}}{{v}}{{/items}}", {"items": list(range(1000)), "v": "x" * 1000})) == 1_000_000


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), {1: "a"}, {"a": {"b": "\ud800"}}, {"a", "b"},
                                   10 ** 5000], ids=["nan", "inf", "object", "int-key", "surrogate", "set", "huge-int"])
def test_values_that_are_not_plain_json_are_refused(fmt, value):
    details = mismatch(lambda: render_text("{{v}}", {"v": value}, fmt))
    assert details["problems"] == [{"variable": "v", "problem": "wrong_type", "expected": "json", "got": "unsupported"}]


def test_values_nested_too_deep_are_refused():
    deep: list = []
    for _ in range(100):
        deep = [deep]
    mismatch(lambda: render_text("{{v}}", {"v": deep}))


def test_render_never_touches_the_callers_objects():
    # given an object whose attribute access would run code, when passed as a value, then it is refused
    # before pystache (which calls an object's attributes for {{name}}) ever sees it
    touched = []

    class Spy:
        @property
        def name(self):
            touched.append(True)
            return "ran"

    mismatch(lambda: render_text("{{#s}}{{name}}{{/s}}", {"s": Spy()}))
    assert touched == []


@pytest.mark.parametrize("values", [["a"], "x", 3])
def test_values_must_be_an_object(values):
    mismatch(lambda: render_text("{{a}}", values))


# -- clean_variables ---------------------------------------------------------------------------------


def test_undeclared_variables_default_to_the_used_ones_without_a_schema():
    assert clean_variables(None, ["a", "b"]) == (["a", "b"], None)


def test_declared_names_work_as_today():
    assert clean_variables(["b", "a", "b"], ["a", "b"]) == (["b", "a"], None)
    assert clean_variables([], []) == ([], None)


def test_declared_names_must_match_the_used_ones():
    refused(None, lambda: clean_variables(["a", "z"], ["a", "b"]), kind=Invalid, code="VARIABLES_MISMATCH",
            details={"undeclared": ["b"], "unused": ["z"]})


@pytest.mark.parametrize("declared,invalid", [(["a", "1x"], ["1x"]), (["a", 3], [3]), (["a b"], ["a b"])])
def test_declared_names_must_be_identifiers(declared, invalid):
    refused(None, lambda: clean_variables(declared, ["a"]), kind=Invalid, code="INVALID_VARIABLES",
            details={"invalid": invalid})


def test_a_schema_is_returned_with_every_key_filled():
    # given objects with only some keys
    declared = [{"name": "topic"}, {"name": "n", "type": "number", "required": False},
                {"name": "tone", "default": "friendly", "description": "  how to sound  "},
                {"name": "opts", "type": "object", "required": False, "default": {"k": [1]}}]

    # when cleaned, then names follow the declaration and every key has its value
    names, schema = clean_variables(declared, ["tone", "topic", "n", "opts"])

    assert names == ["topic", "n", "tone", "opts"]
    assert schema == [spec("topic"), spec("n", "number", required=False),
                      spec("tone", required=False, default="friendly", description="how to sound"),
                      spec("opts", "object", required=False, default={"k": [1]})]


@pytest.mark.parametrize("kind,default", [("string", "s"), ("number", 0), ("number", 2.5), ("boolean", False),
                                          ("list", []), ("list", ["a", {"b": 1}]), ("object", {})])
def test_a_default_of_the_variables_type_is_accepted(kind, default):
    _, schema = clean_variables([{"name": "v", "type": kind, "default": default}], ["v"])
    assert schema == [spec("v", kind, required=False, default=default)]


def test_a_schema_must_match_the_used_variables():
    refused(None, lambda: clean_variables([{"name": "a"}, {"name": "z"}], ["a", "b"]), kind=Invalid,
            code="VARIABLES_MISMATCH", details={"undeclared": ["b"], "unused": ["z"]})


@pytest.mark.parametrize("entry,problem", [
    ({"name": "v", "kind": "string"}, "unknown_keys"),
    ({"type": "string"}, "invalid_name"),
    ({"name": "1v"}, "invalid_name"),
    ({"name": "v", "type": "int"}, "invalid_type"),
    ({"name": "v", "type": None}, "invalid_type"),
    ({"name": "v", "required": "yes"}, "invalid_required"),
    ({"name": "v", "required": 1}, "invalid_required"),
    ({"name": "v", "required": True, "default": "x"}, "default_with_required"),
    ({"name": "v", "type": "number", "default": "3"}, "default_wrong_type"),
    ({"name": "v", "type": "number", "default": True}, "default_wrong_type"),
    ({"name": "v", "type": "boolean", "default": 1}, "default_wrong_type"),
    ({"name": "v", "type": "list", "default": {}}, "default_wrong_type"),
    ({"name": "v", "type": "object", "default": []}, "default_wrong_type"),
    ({"name": "v", "type": "number", "default": float("nan")}, "invalid_default"),
    ({"name": "v", "default": "x" * 20_000}, "default_too_large"),
    ({"name": "v", "description": "x" * (MAX_DESCRIPTION + 1)}, "invalid_description"),
    ({"name": "v", "description": "bell\x07"}, "invalid_description"),
    ({"name": "v", "description": 5}, "invalid_description"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_schema_entry_is_refused_naming_index_and_problem(entry, problem):
    error = refused(None, lambda: clean_variables([{"name": "ok"}, entry], ["ok", "v"]), kind=Invalid,
                    code="INVALID_VARIABLES")
    assert (error.details["index"], error.details["problem"]) == (1, problem)


def test_a_description_of_the_maximum_length_with_newlines_is_accepted():
    text = ("x" * 9 + "\n") * (MAX_DESCRIPTION // 10)
    assert clean_variables([{"name": "v", "description": text}], ["v"])[1][0]["description"] == text.strip()


@pytest.mark.parametrize("declared,problem", [
    (["a", {"name": "b"}], "mixed"), ([{"name": "a"}, 3], "not_an_object"), ("a", "not_a_list"),
    ({"name": "a"}, "not_a_list"), ([{"name": "a"}, {"name": "a", "type": "number"}], "duplicate"),
])
def test_a_malformed_declaration_is_refused(declared, problem):
    error = refused(None, lambda: clean_variables(declared, ["a", "b"]), kind=Invalid, code="INVALID_VARIABLES")
    assert error.details["problem"] == problem


@pytest.mark.parametrize("as_objects", [False, True], ids=["names", "schema"])
def test_at_most_the_maximum_number_of_variables(as_objects):
    names = [f"v{i}" for i in range(MAX_VARIABLES + 1)]
    declared = [{"name": n} for n in names] if as_objects else names
    refused(None, lambda: clean_variables(declared, names), kind=Invalid, code="INVALID_VARIABLES")
    assert clean_variables(declared[:MAX_VARIABLES], names[:MAX_VARIABLES])[0] == names[:MAX_VARIABLES]


# -- check_values ------------------------------------------------------------------------------------


def test_without_a_schema_every_name_is_required_and_any_json_goes():
    values = {"a": "s", "b": [1, {"x": None}], "c": None}

    assert check_values(None, ["a", "b", "c"], values) == values


def test_without_a_schema_missing_and_unknown_are_listed_together():
    details = mismatch(lambda: check_values(None, ["a", "b", "c"], {"b": 1, "x": 2, "y": 3}))

    assert details == {"missing": ["a", "c"], "unknown": ["x", "y"], "problems": [
        {"variable": "a", "problem": "missing"}, {"variable": "c", "problem": "missing"},
        {"variable": "x", "problem": "unknown"}, {"variable": "y", "problem": "unknown"}]}


def test_every_problem_against_a_schema_is_listed_at_once():
    # given a schema and values with one problem of every kind
    schema = [spec("s"), spec("n", "number"), spec("b", "boolean"), spec("l", "list"), spec("o", "object"),
              spec("gone"), spec("f", "number")]
    values = {"s": 1, "n": True, "b": "yes", "l": {"a": 1}, "o": [1], "f": 1.5, "extra": 0}

    # when checked, then every problem is named
    details = mismatch(lambda: check_values(schema, [], values))

    assert details == {"missing": ["gone"], "unknown": ["extra"], "problems": [
        {"variable": "s", "problem": "wrong_type", "expected": "string", "got": "number"},
        {"variable": "n", "problem": "wrong_type", "expected": "number", "got": "boolean"},
        {"variable": "b", "problem": "wrong_type", "expected": "boolean", "got": "string"},
        {"variable": "l", "problem": "wrong_type", "expected": "list", "got": "object"},
        {"variable": "o", "problem": "wrong_type", "expected": "object", "got": "list"},
        {"variable": "gone", "problem": "missing"},
        {"variable": "extra", "problem": "unknown"},
    ]}


@pytest.mark.parametrize("kind,value", [("string", ""), ("number", 0), ("number", -2.5), ("boolean", False),
                                        ("list", []), ("object", {"a": [None]})])
def test_values_of_the_declared_type_are_accepted(kind, value):
    assert check_values([spec("v", kind)], ["v"], {"v": value}) == {"v": value}


def test_defaults_fill_in_and_are_copies():
    default = {"k": ["a"]}
    schema = [spec("o", "object", required=False, default=default), spec("t", required=False, default="hi"),
              spec("bare", required=False)]

    values = check_values(schema, ["o", "t", "bare"], {"t": None})
    values["o"]["k"].append("changed")

    # then an absent or null optional variable takes its default, one without a default stays absent
    assert values == {"o": {"k": ["a", "changed"]}, "t": "hi"}
    assert default == {"k": ["a"]} and schema[0]["default"] == {"k": ["a"]}
    assert check_values(schema, [], {"t": "yo", "bare": "b"}) == {"o": {"k": ["a"]}, "t": "yo", "bare": "b"}


def test_null_for_a_required_variable_is_a_wrong_type():
    details = mismatch(lambda: check_values([spec("s")], ["s"], {"s": None}))
    assert details["problems"] == [{"variable": "s", "problem": "wrong_type", "expected": "string", "got": "null"}]


@pytest.mark.parametrize("schema", [None, [spec("a")]], ids=["names", "schema"])
def test_not_strict_tolerates_and_drops_unknown_variables(schema):
    assert check_values(schema, ["a"], {"a": "x", "zz": 1}, strict=False) == {"a": "x"}
    mismatch(lambda: check_values(schema, ["a"], {"zz": 1}, strict=False))  # missing is still missing


def test_values_that_are_not_json_are_a_wrong_type():
    details = mismatch(lambda: check_values([spec("n", "number")], ["n", "x"], {"n": float("nan")}))
    assert details["problems"] == [
        {"variable": "n", "problem": "wrong_type", "expected": "number", "got": "unsupported"}]
    details = mismatch(lambda: check_values(None, ["x"], {"x": object()}))
    assert details["problems"] == [{"variable": "x", "problem": "wrong_type", "expected": "json", "got": "unsupported"}]


def test_check_values_wants_an_object():
    details = mismatch(lambda: check_values(None, ["a"], ["a"]))
    assert details["problems"] == [{"problem": "wrong_type", "expected": "object", "got": "list"}]
    assert check_values(None, [], None) == {}


def test_checked_values_render_the_template():
    # given a version's text and declared schema, when the caller's values are checked and rendered
    text = "{{#examples}}- {{q}}\n{{/examples}}{{^examples}}(none)\n{{/examples}}Tone: {{tone}}. {{question}}"
    names, schema = clean_variables([{"name": "examples", "type": "list", "required": False},
                                     {"name": "tone", "default": "warm"}, {"name": "question"}], variables_of(text))
    values = check_values(schema, names, {"question": "Why?"})

    assert render_text(text, values) == "(none)\nTone: warm. Why?"


# -- chat messages -------------------------------------------------------------------------------------


def test_messages_are_cleaned_to_new_dicts():
    given = [{"role": "system", "content": "You are {{persona}}."}, {"type": "placeholder", "name": "history"},
             {"role": "user", "content": "{{question}}"}, {"role": "assistant", "content": "ok"},
             {"role": "tool", "content": "{}"}]

    cleaned = clean_messages(given)

    assert cleaned == given and all(a is not b for a, b in zip(cleaned, given, strict=True))


@pytest.mark.parametrize("messages,index,problem", [
    ([{"role": "user", "content": "x"}, "hi"], 1, "not_an_object"),
    ([{"role": "human", "content": "x"}], 0, "invalid_role"),
    ([{"role": "User", "content": "x"}], 0, "invalid_role"),
    ([{"content": "x"}], 0, "invalid_role"),
    ([{"role": "user", "content": 3}], 0, "invalid_content"),
    ([{"role": "user"}], 0, "invalid_content"),
    ([{"role": "user", "content": "x", "name": "bob"}], 0, "unknown_keys"),
    ([{"type": "placeholder", "name": "h", "role": "user"}], 0, "unknown_keys"),
    ([{"type": "message", "role": "user", "content": "x"}], 0, "invalid_type"),
    ([{"type": "placeholder", "name": "1h"}], 0, "invalid_placeholder_name"),
    ([{"type": "placeholder"}], 0, "invalid_placeholder_name"),
    ([{"type": "placeholder", "name": "h"}, {"role": "user", "content": "x"}, {"type": "placeholder", "name": "h"}],
     2, "duplicate_placeholder"),
])
def test_a_bad_message_is_refused_naming_its_index_and_problem(messages, index, problem):
    error = refused(None, lambda: clean_messages(messages), kind=Invalid, code="INVALID_MESSAGES")
    assert (error.details["index"], error.details["problem"]) == (index, problem)


@pytest.mark.parametrize("messages,problem", [
    ([], "empty"), ("hello", "not_a_list"), (None, "not_a_list"),
    ([{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1), "too_many"),
    ([{"role": "user", "content": "x" * (MAX_TEMPLATE // 2)}] * 3, "too_large"),
])
def test_the_message_list_is_bounded(messages, problem):
    error = refused(None, lambda: clean_messages(messages), kind=Invalid, code="INVALID_MESSAGES")
    assert error.details["problem"] == problem


def test_the_maximum_number_of_messages_is_accepted():
    assert len(clean_messages([{"role": "user", "content": "x"}] * MAX_MESSAGES)) == MAX_MESSAGES


@pytest.mark.parametrize("content,problem", [("{{#each x}}{{/each}}", "invalid_name"), ("  ", "empty"),
                                             ("a\x00", "bad_character"), ("{{#a}}", "unclosed_section")])
def test_message_content_is_checked_like_a_template(content, problem):
    messages = [{"role": "system", "content": "ok"}, {"role": "user", "content": content}]

    error = invalid_template(lambda: clean_messages(messages), problem)

    assert error.details["index"] == 1


def test_plain_message_content_keeps_handlebars_text():
    messages = [{"role": "user", "content": "{{#each x}}{{/each}} {{q}}"}]
    assert clean_messages(messages, "plain") == messages


def test_message_text_joins_contents_by_blank_lines():
    messages = [{"role": "system", "content": "A"}, {"type": "placeholder", "name": "h"},
                {"role": "user", "content": "B {{x}}"}]

    assert message_text(messages) == "A\n\nB {{x}}"


# -- render_messages -----------------------------------------------------------------------------------


CHAT = [{"role": "system", "content": "You are {{persona}}. <rules>&</rules>"},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{#items}}- {{.}}\n{{/items}}{{question}}"}]


def test_messages_render_and_placeholders_splice_in_place():
    history = [{"role": "user", "content": "earlier {{not rendered}}"}, {"role": "assistant", "content": "reply"}]

    out = render_messages(CHAT, {"persona": "terse", "items": ["a"], "question": "Q?"},
                          {"history": history, "unused": [{"role": "user", "content": "ignored"}]})

    assert out == [{"role": "system", "content": "You are terse. <rules>&</rules>"},
                   {"role": "user", "content": "earlier {{not rendered}}"}, {"role": "assistant", "content": "reply"},
                   {"role": "user", "content": "- a\nQ?"}]
    assert out[1] is not history[0]


def test_an_empty_placeholder_list_splices_nothing():
    out = render_messages(CHAT, {"persona": "p", "question": "q"}, {"history": []})
    assert [m["role"] for m in out] == ["system", "user"]


def test_plain_messages_render_with_todays_substitution():
    messages = [{"role": "user", "content": "{{#each x}} {{q}}"}, {"type": "placeholder", "name": "h"}]

    out = render_messages(messages, {"q": True}, {"h": []}, "plain")

    assert out == [{"role": "user", "content": "{{#each x}} True"}]


def test_a_missing_placeholder_is_named():
    details = mismatch(lambda: render_messages(CHAT, {}, {}))

    assert details["problems"] == [{"placeholder": "history", "problem": "missing"}]
    assert details["missing_placeholders"] == ["history"]


def test_every_bad_spliced_message_is_listed():
    chat = [{"type": "placeholder", "name": "a"}, {"type": "placeholder", "name": "b"},
            {"type": "placeholder", "name": "c"}]
    given = {"a": [{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}, "text",
                   {"role": "user", "content": 1}, {"role": "user", "content": "x", "name": "n"}],
             "b": {"role": "user", "content": "not a list"}}

    details = mismatch(lambda: render_messages(chat, {}, given))

    assert [(p["placeholder"], p.get("index"), p["problem"]) for p in details["problems"]] == [
        ("a", 1, "invalid_message"), ("a", 2, "invalid_message"), ("a", 3, "invalid_message"),
        ("a", 4, "invalid_message"), ("b", None, "wrong_type"), ("c", None, "missing")]


def test_rendered_messages_are_bounded_together():
    chat = [{"role": "user", "content": "{{v}}"}, {"role": "user", "content": "{{v}}"},
            {"type": "placeholder", "name": "h"}]
    big = "x" * 400_000

    assert len(render_messages(chat, {"v": big}, {"h": [{"role": "user", "content": "y" * 100_000}]})) == 3
    refused(None, lambda: render_messages(chat, {"v": big}, {"h": [{"role": "user", "content": "y" * 300_000}]}),
            kind=Invalid, code="RENDER_TOO_LARGE")
    refused(None, lambda: render_messages(chat, {"v": "x"}, {"h": [{"role": "user", "content": ""}] * 20_000}),
            kind=Invalid, code="RENDER_TOO_LARGE")


def test_a_message_that_fails_to_render_is_located():
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "{{> footer}}"}]
    error = invalid_template(lambda: render_messages(chat, {}, {}), "unresolved_include")
    assert error.details["index"] == 1


# -- properties over random templates ------------------------------------------------------------------


ATOMS = ["{{", "}}", "{", "}", "#", "^", "/", "!", ">", "&", "=", "a", "b", "a.b", ".", " ", "\t", "\n", "\r\n", "\r",
         "@", "1", "x", "-", "\u2003", "\x1c", "{{a}}", "{{#a}}", "{{/a}}", "{{^a}}", "{{#b}}", "{{/b}}", "{{{a}}}",
         "{{&b}}", "{{! c }}", "{{> p}}", "{{.}}", "{{ a }}", "  {{#a}}\n", "{{/a}}\n", "{{#.}}", "{{/.}}", "{{=",
         "=}}", "{{b.a}}", "\t{{^b}}\r\n"]
VALUES = [{"a": [1, 2], "b": "B"}, {"a": {"a": "x", "b": [True, None]}, "b": False}, {"a": "s"}, {},
          {"a": [{"b": "1"}, {"a": []}], "b": 0}, {"a": True, "b": {"a": "<&>", "b": [[1], []]}}]


def _shape(tree) -> list:
    """A pystache parse tree as comparable data."""
    out: list = []
    for node in tree._parse_tree:
        if type(node) is str:
            out.append(("text", node))
        elif isinstance(node, _EscapeNode):
            out.append(("var", node.key))
        elif isinstance(node, _LiteralNode):
            out.append(("raw", node.key))
        elif isinstance(node, _CommentNode):
            out.append(("comment",))
        elif isinstance(node, _PartialNode):
            out.append(("partial", node.key, node.indent))
        elif isinstance(node, _SectionNode):
            out.append(("section", node.key, node.index_begin, node.index_end, _shape(node.parsed)))
        elif isinstance(node, _InvertedNode):
            out.append(("inverted", node.key, _shape(node.parsed_section)))
        else:
            raise AssertionError(f"unexpected node {type(node)}")
    return out


def _random_texts(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join(rng.choice(ATOMS) for _ in range(rng.randint(1, 16)))


@pytest.mark.parametrize("seed", range(4))
def test_random_templates_only_ever_raise_invalid_and_render_as_pystache_does(seed):
    accepted = 0
    for text in _random_texts(seed, 2_500):
        # when a random brace-heavy text is checked, then only Invalid is ever raised
        try:
            check_text(text)
        except Invalid:
            continue
        accepted += 1
        parsed = _parse(text)
        # then pystache parses the accepted text to the very tree this module built
        assert _shape(pystache_parse(text, raise_on_mismatch=True)) == _shape(parsed.tree), repr(text)
        for values in VALUES:
            try:
                out = render_text(text, values)
            except Invalid as error:  # only an unresolved include may refuse a checked text here
                assert error.details["problem"] == "unresolved_include", repr(text)
                continue
            # and rendering gives what pystache gives on the text itself, as measured beforehand
            reference = _Renderer(escape=lambda s: s, missing_tags="ignore", partials={}).render(text, values)
            assert out == reference, (text, values)
            budget = _Budget()
            _measure(parsed.children, [values], budget)
            assert budget.chars == len(out)
    assert accepted > 200  # the generator does reach valid templates


@pytest.mark.parametrize("fmt", FORMATS)
def test_random_values_only_ever_raise_invalid(fmt):
    rng = random.Random(7)
    pool = [None, True, 0, -1, 2.5, float("nan"), "", "<s>", [], [1, "a"], {}, {"a": "x"}, {"b": [None]}, object(),
            {1: 2}, ("t",), 10 ** 5000, [[[]]]]
    texts = ["{{a}}{{b.a}}", "{{#a}}{{.}}{{b}}{{/a}}{{^b}}-{{/b}}", "{{#a}}{{#.}}{{a}}{{/.}}{{/a}}", "{{{a}}}{{&b}}"]
    for _ in range(1_500):
        values = {k: rng.choice(pool) for k in rng.sample(["a", "b", "c"], rng.randint(0, 3))}
        for text in texts:
            try:
                render_text(text, values, fmt)
                check_values(None, variables_of(text, fmt), values, strict=rng.random() < 0.5)
            except Invalid:
                pass
