"""values: render and the placeholder/template rules it relies on; name rules."""
from __future__ import annotations

import pytest

from domain.errors import Invalid
from domain.values import MAX_TEMPLATE, clean_model_config, clean_name, clean_template, placeholders, render
from tests.unit.domain_helpers import refused


def test_render_substitutes_every_placeholder_including_repeats_and_spacing():
    text = render("Hi {{name}}, {{ name }}! You are {{age}}.", ["name", "age"], {"name": "Ada", "age": 36})

    assert text == "Hi Ada, Ada! You are 36."


def test_render_is_a_single_pass():
    assert render("{{a}}", ["a"], {"a": "{{a}}"}) == "{{a}}"


def test_render_leaves_non_placeholders_alone():
    assert render("{{ 1bad }} {x} {{ok}}", ["ok"], {"ok": "yes"}) == "{{ 1bad }} {x} yes"


def test_render_without_variables():
    assert render("static", [], {}) == "static"


def test_render_with_missing_variable_names_it():
    refused(None, lambda: render("{{a}} {{b}}", ["a", "b"], {"a": 1}), kind=Invalid,
            code="RENDER_VARIABLES_MISMATCH", details={"missing": ["b"], "unknown": []})


def test_render_with_unknown_variable_names_it():
    refused(None, lambda: render("{{a}}", ["a"], {"a": 1, "z": 2}), kind=Invalid,
            code="RENDER_VARIABLES_MISMATCH", details={"missing": [], "unknown": ["z"]})


def test_render_with_missing_and_unknown_names_both():
    refused(None, lambda: render("{{a}} {{b}}", ["a", "b"], {"b": 1, "c": 2, "d": 3}), kind=Invalid,
            code="RENDER_VARIABLES_MISMATCH", details={"missing": ["a"], "unknown": ["c", "d"]})


def test_placeholders_in_first_use_order_without_duplicates():
    assert placeholders("{{b}} {{ a }} {{b}} {{_c1}}") == ["b", "a", "_c1"]


def test_clean_template_rejects_nul_and_oversize():
    refused(None, lambda: clean_template("a\x00b", None), kind=Invalid, code="INVALID_TEMPLATE")
    refused(None, lambda: clean_template("x" * (MAX_TEMPLATE + 1), None), kind=Invalid, code="INVALID_TEMPLATE")
    refused(None, lambda: clean_template("a\ud800b", None), kind=Invalid, code="INVALID_TEMPLATE")
    assert clean_template("x" * MAX_TEMPLATE, None)[0] == "x" * MAX_TEMPLATE


def test_model_config_refuses_unencodable_text():
    refused(None, lambda: clean_model_config({"stop": "\ud800"}), kind=Invalid, code="INVALID_MODEL_CONFIG")


def test_clean_template_rejects_non_identifier_variables():
    error = refused(None, lambda: clean_template("{{a}}", ["a", "1x"]), kind=Invalid, code="INVALID_VARIABLES")
    assert error.details == {"invalid": ["1x"]}


def test_render_refuses_output_beyond_the_bound():
    # 20 repeats of a 60k value = 1.2M characters: a small template must not multiply a value unboundedly.
    template = "{{v}}" * 20
    refused(None, lambda: render(template, ["v"], {"v": "x" * 60_000}), kind=Invalid, code="RENDER_TOO_LARGE",
            details={"max": 1_000_000})
    assert len(render(template, ["v"], {"v": "x" * 40_000})) == 800_000


# -- clean_name ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tab\there", "new\nline", "carriage\rreturn", "crlf\r\nend", "a\t\tb"],
                         ids=["tab", "newline", "carriage-return", "crlf", "tabs"])
def test_clean_name_refuses_tab_newline_and_carriage_return_inside_a_name(name):
    """A name is one line: a prompt created under such a name could never be fetched by it."""
    refused(None, lambda: clean_name(name), kind=Invalid, code="INVALID_NAME")
    refused(None, lambda: clean_name(name, what="organisation name"), kind=Invalid, code="INVALID_NAME")
    refused(None, lambda: clean_name(name, what="key name", max_len=100), kind=Invalid, code="INVALID_NAME")


@pytest.mark.parametrize("name", ["a\x00b", "bell\x07", "esc\x1b[31m", "zero\u200bwidth", "a/b"],
                         ids=["nul", "bell", "escape", "format-char", "slash"])
def test_clean_name_refuses_other_control_characters_and_slashes(name):
    refused(None, lambda: clean_name(name), kind=Invalid, code="INVALID_NAME")


def test_clean_name_trims_surrounding_whitespace_including_line_breaks():
    assert clean_name("\t greeting \r\n") == "greeting"
    assert clean_name("Grüße aus Köln") == "Grüße aus Köln"
    assert clean_name("Cafe\u0301") == "Café", "NFC-normalised"


def test_clean_name_bounds():
    refused(None, lambda: clean_name(" \t\n "), kind=Invalid, code="INVALID_NAME", details={"max": 200})
    refused(None, lambda: clean_name("x" * 201), kind=Invalid, code="INVALID_NAME", details={"max": 200})
    refused(None, lambda: clean_name(None), kind=Invalid, code="INVALID_NAME")  # type: ignore[arg-type]
    assert clean_name("x" * 200) == "x" * 200


@pytest.mark.parametrize("separator", ["\u2028", "\u2029"])
def test_line_and_paragraph_separators_are_refused_in_names(separator):
    """`str.splitlines()` breaks on them: a name is one line."""
    with pytest.raises(Invalid) as refused:
        clean_name(f"a{separator}b")
    assert refused.value.code == "INVALID_NAME"
