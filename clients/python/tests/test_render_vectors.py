"""The client's local render equals the server's on every shared vector (render_vectors.json, made by
running the server's engine: see generate_render_vectors.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptforge_client import Prompt, RenderError
from promptforge_client import template as engine

VECTORS = json.loads((Path(__file__).parent / "render_vectors.json").read_text(encoding="utf-8"))


def _id(case: dict) -> str:
    return case["name"]


def _prompt(case: dict) -> Prompt:
    """The case as a fetched Prompt (variables / schema as the server reports them)."""
    return Prompt(type=case["type"], name="vector", version=1, label=None, template=case.get("template"),
                  messages=tuple(case["messages"]) if case["type"] == "chat" else None,
                  template_format=case["template_format"], config={}, variables=tuple(case["variables"]),
                  variable_schema=tuple(case["variable_schema"]) if case["variable_schema"] is not None else None)


def test_vectors_cover_what_they_must():
    names = " | ".join(c["name"] for c in VECTORS)
    for needle in ("plain:", "mustache: dotted", "section over a list", "section over an object", "section over true",
                   "inverted", "comment", "unicode", "no HTML escaping", "values print as JSON", "chat:",
                   "placeholder", "missing", "unknown", "wrong type", "too large", "invalid:"):
        assert needle in names, needle
    assert len(VECTORS) >= 90
    assert {c["template_format"] for c in VECTORS} == {"plain", "mustache"}


@pytest.mark.parametrize("case", [c for c in VECTORS if "variables" in c], ids=_id)
def test_local_render_matches_the_server(case):
    prompt = _prompt(case)
    if "expected" in case:
        got = prompt.render(case["values"], placeholders=case.get("placeholders"), strict=case["strict"])
        assert got == case["expected"]
    else:
        with pytest.raises(RenderError) as caught:
            prompt.render(case["values"], placeholders=case.get("placeholders"), strict=case["strict"])
        assert caught.value.code == case["error"]["code"]
        assert caught.value.details == case["error"]["details"]


def _fallback(case: dict) -> Prompt:
    content = {"template": case["template"]} if case["type"] == "text" else {"messages": case["messages"]}
    return Prompt.fallback({**content, "template_format": case["template_format"], "variables": case["declared"]},
                           name="vector")


@pytest.mark.parametrize("case", [c for c in VECTORS if "variables" not in c], ids=_id)
def test_local_refusals_match_the_server(case):
    """Templates the server refuses (when written, or an include left to render): the client refuses
    them with the same code and details (e.g. a caller's fallback)."""
    with pytest.raises(RenderError) as caught:
        if case["type"] == "chat":
            engine.clean_messages(case["messages"], case["template_format"])
        else:
            engine.check_text(case["template"], case["template_format"])
        _fallback(case).render(case["values"], placeholders=case.get("placeholders"), strict=case["strict"])
    assert caught.value.code == case["error"]["code"]
    assert caught.value.details == case["error"]["details"]


@pytest.mark.parametrize("case", [c for c in VECTORS if "variables" in c and c["declared"] is None], ids=_id)
def test_local_variables_match_the_server(case):
    """Without declarations, the client derives the variables the server derives (what a fallback uses),
    and renders a fallback exactly as the server renders the stored prompt."""
    fallback = _fallback(case)
    assert list(fallback.variables) == case["variables"]
    assert fallback.is_fallback and fallback.variable_schema is None
    if "expected" in case:
        assert fallback.render(case["values"], placeholders=case.get("placeholders"),
                               strict=case["strict"]) == case["expected"]


def test_render_keyword_and_mapping_forms():
    p = Prompt.fallback("{{placeholders}} {{strict}} {{x}}", name="n")
    assert p.render({"placeholders": "P", "strict": "S"}, x=1) == "P S 1"
    with pytest.raises(RenderError) as caught:
        p.render(x=1)
    assert caught.value.code == "RENDER_VARIABLES_MISMATCH"
    assert caught.value.details["missing"] == ["placeholders", "strict"]


def test_render_error_is_a_promptforge_error():
    from promptforge_client import PromptForgeError

    with pytest.raises(PromptForgeError):
        Prompt.fallback("{{a}}", name="n").render()
