"""Regenerate `render_vectors.json` by running the SERVER's template engine on every case below.

Run from the repository root with the server's environment (it imports `domain`):

    .venv/bin/python clients/python/tests/generate_render_vectors.py          # rewrite the file
    .venv/bin/python clients/python/tests/generate_render_vectors.py --check  # exit 1 if it is stale

Each case gives the inputs (`type`, `template` or `messages`, `template_format`, `declared`: the
`variables` sent when the prompt is created, `values`, `placeholders`, `strict`); the script adds what
the server computes:

* `variables` / `variable_schema`: what a by-name fetch of that version returns (the version's content
  as `domain.prompt` validates it, composed by `domain.composition.resolve`);
* `expected`: the rendered text (text prompts) or messages (chat prompts), exactly as
  `application.PromptForge.render_prompt` renders (check_values, then render_text / render_messages);
* or `error`: `{"code", "details"}` of the refusal, with `"at": "create"` when writing the version is
  already refused (an invalid template), `"at": "render"` otherwise.

`"http": false` marks cases the HTTP API cannot carry as such (a template with an include, which the
server resolves before rendering; placeholder messages the request schema refuses before the engine
sees them): they are checked against the engine directly and against the client, not over HTTP.

The client's tests assert that `promptforge_client.template` gives the same answers, and the server's
`tests/e2e/test_client_render_vectors.py` asserts the server still does (over HTTP and directly).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
OUT = HERE / "render_vectors.json"

CHAT_BASE = [{"role": "system", "content": "You support {{product}}.{{#vip}} Be extra careful.{{/vip}}"},
             {"type": "placeholder", "name": "history"}, {"role": "user", "content": "{{question}}"}]
HISTORY = [{"role": "user", "content": "Hi {{product}}"}, {"role": "assistant", "content": "Hello!"}]


def case(name: str, template: str | None = None, values: dict | None = None, *, fmt: str = "mustache",
         messages: list | None = None, declared: list | None = None, placeholders: dict | None = None,
         strict: bool = True, http: bool = True, note: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "type": "chat" if messages is not None else "text"}
    if messages is not None:
        c["messages"] = messages
    else:
        c["template"] = template
    c["template_format"] = fmt
    c["declared"] = declared
    c["values"] = values or {}
    if placeholders is not None:
        c["placeholders"] = placeholders
    c["strict"] = strict
    if not http:
        c["http"] = False
    if note:
        c["note"] = note
    return c


CASES: list[dict[str, Any]] = [
    # -- plain -----------------------------------------------------------------------------------
    case("plain: variable", "Hello {{ name }}!", {"name": "Ada"}, fmt="plain"),
    case("plain: spacing inside braces", "{{name}}, {{  name  }} and {{\tname\t}}", {"name": "Ada"}, fmt="plain"),
    case("plain: other braces are literal", "{{#each items}} {{CGI-1.output}} {{> x}} {{a.b}} {{ name }} {{/each}}",
         {"name": "ok"}, fmt="plain"),
    case("plain: str() of every JSON type",
         "s={{ s }} i={{ i }} f={{ f }} t={{ t }} n={{ n }} l={{ l }} o={{ o }}",
         {"s": "text", "i": 42, "f": 2.5, "t": True, "n": None, "l": ["a", 1, None, False], "o": {"k": "v", "n": [1]}},
         fmt="plain"),
    case("plain: unicode", "Grüße, {{ who }} — 你好 😀", {"who": "Zoë ☃"}, fmt="plain"),
    case("plain: no escaping", "<b>{{ html }}</b>", {"html": "<i>&amp; \"quoted\" 'single'</i>"}, fmt="plain"),
    case("plain: repeated variable", "{{ a }}-{{ a }}-{{ b }}", {"a": "1", "b": "2"}, fmt="plain"),
    case("plain: value with braces is not re-rendered", "{{ a }}", {"a": "{{ b }}"}, fmt="plain"),
    case("plain: missing variable", "{{ a }} {{ b }}", {"a": "1"}, fmt="plain"),
    case("plain: unknown variable", "{{ a }}", {"a": "1", "zzz": 2}, fmt="plain"),
    case("plain: unknown ignored when not strict", "{{ a }}", {"a": "1", "zzz": 2}, fmt="plain", strict=False),
    case("plain: schema default", "Tone: {{ tone }}", {}, fmt="plain",
         declared=[{"name": "tone", "type": "string", "default": "kind"}]),
    case("plain: schema wrong type", "{{ n }}", {"n": "3"}, fmt="plain", declared=[{"name": "n", "type": "number"}]),
    case("plain: too large", "{{ x }}" * 1001, {"x": "x" * 1000}, fmt="plain"),
    case("plain: multiline", "line 1 {{ a }}\n\nline 3\r\n{{ b }}", {"a": "A", "b": "B"}, fmt="plain"),

    # -- mustache: variables and printing ----------------------------------------------------------
    case("mustache: variable", "Hello {{name}}!", {"name": "Ada"}),
    case("mustache: spacing inside tags", "{{ name }}|{{  name}}|{{#  s  }}in{{/ s }}", {"name": "Ada", "s": True}),
    case("mustache: dotted names", "{{user.name}} lives in {{user.address.city}}",
         {"user": {"name": "Ada", "address": {"city": "London"}}}),
    case("mustache: dotted name, missing part renders empty", "[{{user.email}}][{{user.name.first}}]",
         {"user": {"name": "Ada"}}),
    case("mustache: dotted name into a list or scalar renders empty", "[{{a.b}}][{{c.d}}]", {"a": [1, 2], "c": "str"}),
    case("mustache: values print as JSON",
         "s={{s}} i={{i}} neg={{neg}} f={{f}} whole={{whole}} small={{small}} huge={{huge}} big={{big}} "
         "t={{t}} fa={{fa}} nul=[{{nul}}] l={{l}} o={{o}} empty=[{{e}}]",
         {"s": "text", "i": 42, "neg": -7, "f": 3.14, "whole": 2.0, "small": 1e-07, "huge": 1e22,
          "big": 12345678901234567890, "t": True, "fa": False, "nul": None, "l": ["a", 1, True, None],
          "o": {"k": "v", "n": [1, 2]}, "e": ""}),
    case("mustache: JSON keeps unicode and escapes quotes", "{{l}} {{o}}",
         {"l": ["Zoë", "a\"b", "line\nbreak"], "o": {"ключ": "значение"}}),
    case("mustache: unicode", "¡Hola {{nombre}}! 👋 {{emoji}} 中文", {"nombre": "José", "emoji": "🎉"}),
    case("mustache: no HTML escaping", "{{html}} {{{html}}} {{&html}}", {"html": "<a href=\"x\">&amp;'</a>"}),
    case("mustache: value with braces is not re-rendered", "{{a}}", {"a": "{{b}} {{#c}}"}),
    case("mustache: unclosed braces are literal", "a {{ b", {}),
    case("mustache: closing braces alone are literal", "x }} y {{name}} z {", {"name": "N"}),
    case("mustache: trailing open braces are literal", "{{name}} and {{", {"name": "N"}),
    case("mustache: single braces are literal", "{ {name} } {{name}}", {"name": "N"}),

    # -- mustache: sections ------------------------------------------------------------------------
    case("mustache: section over a list of objects", "{{#items}}- {{sku}} x{{qty}}\n{{/items}}",
         {"items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}]}),
    case("mustache: section over a list of scalars", "{{#tags}}[{{.}}]{{/tags}}", {"tags": ["a", "b", "c"]}),
    case("mustache: section items print as JSON", "{{#xs}}<{{.}}>{{/xs}}",
         {"xs": [1, 2.5, True, False, None, "s", [1], {"a": 1}]}),
    case("mustache: section over an object", "{{#user}}{{name}} ({{age}}){{/user}}", {"user": {"name": "Ada", "age": 36}}),
    case("mustache: section over true", "{{#vip}}VIP {{/vip}}Hi", {"vip": True}),
    case("mustache: section over false", "{{#vip}}VIP {{/vip}}Hi", {"vip": False}),
    case("mustache: section over a string", "{{#note}}Note: {{.}}{{/note}}", {"note": "careful"}),
    case("mustache: section over an empty string", "{{#note}}Note: {{.}}{{/note}}.", {"note": ""}),
    case("mustache: section over zero", "{{#n}}has {{.}}{{/n}}{{^n}}none{{/n}}", {"n": 0}),
    case("mustache: section over a number", "{{#n}}has {{.}}{{/n}}{{^n}}none{{/n}}", {"n": 5}),
    case("mustache: section over 0.0", "{{#n}}has {{.}}{{/n}}{{^n}}none{{/n}}", {"n": 0.0}),
    case("mustache: section over null", "{{#n}}has {{.}}{{/n}}{{^n}}none{{/n}}", {"n": None}),
    case("mustache: section over an empty list", "[{{#items}}x{{/items}}]", {"items": []}),
    case("mustache: section over an empty object", "[{{#o}}x{{/o}}]{{^o}}empty{{/o}}", {"o": {}}),
    case("mustache: inverted over an empty list", "{{^items}}No items{{/items}}", {"items": []}),
    case("mustache: inverted over a non-empty list", "{{^items}}No items{{/items}}!", {"items": [1]}),
    case("mustache: inverted over an empty string", "{{^s}}blank{{/s}}", {"s": ""}),
    case("mustache: inverted over false and true", "{{^a}}A{{/a}}{{^b}}B{{/b}}", {"a": False, "b": True}),
    case("mustache: inverted pushes nothing (names inside are top-level)", "{{^vip}}Dear {{name}}{{/vip}}",
         {"vip": False, "name": "Ada"}),
    case("mustache: nested sections", "{{#orders}}#{{id}}: {{#lines}}{{sku}}×{{qty}} {{/lines}}| {{/orders}}",
         {"orders": [{"id": 1, "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]}, {"id": 2, "lines": []}]}),
    case("mustache: a name items lack falls back to the outer values",
         "{{currency}}: {{#orders}}{{id}} in {{currency}}; {{/orders}}",
         {"currency": "EUR", "orders": [{"id": 1}, {"id": 2, "currency": "USD"}]}),
    case("mustache: dotted name does not fall back once its head is found",
         "{{user.name}} {{#ctx}}[{{user.name}}]{{/ctx}}", {"user": {"name": "Ada"}, "ctx": {"user": {"id": 1}}}),
    case("mustache: lists of lists with {{.}}", "{{#rows}}{{#.}}{{.}},{{/.}};{{/rows}}", {"rows": [[1, 2], [3], []]}),
    case("mustache: the section's own name inside it", "{{#items}}{{items}}{{/items}}", {"items": ["a", "b"]}),
    case("mustache: same section twice", "{{#a}}1{{/a}}{{#a}}2{{/a}}", {"a": True}),
    case("mustache: declared names used only inside sections are top-level too",
         "{{#items}}{{sku}}/{{/items}}", {"items": [{"sku": "A"}, {}], "sku": "default"}, declared=["items", "sku"]),
    case("mustache: schema declares a section-only name", "{{#verbose}}Explain {{topic}}.{{/verbose}}",
         {"verbose": True, "topic": "splits"},
         declared=[{"name": "verbose", "type": "boolean"}, {"name": "topic", "type": "string"}]),

    # -- mustache: comments and standalone lines ----------------------------------------------------
    case("mustache: inline comment", "Hello{{! a comment }} {{name}}", {"name": "Ada"}),
    case("mustache: multi-line comment", "a{{! line one\nline two }}b", {}),
    case("mustache: standalone comment line", "line1\n{{! comment }}\nline2", {}),
    case("mustache: standalone section lines", "List:\n{{#items}}\n- {{.}}\n{{/items}}\nEnd", {"items": ["a", "b"]}),
    case("mustache: standalone inverted lines", "A\n  {{^items}}\n  none\n  {{/items}}\nB", {"items": []}),
    case("mustache: standalone with CRLF", "a\r\n{{#s}}\r\nb\r\n{{/s}}\r\nc", {"s": True}),
    case("mustache: standalone with indentation and tabs", "x\n \t{{#s}} \t\ny\n\t{{/s}}\nz", {"s": True}),
    case("mustache: standalone at start and end", "{{#s}}\ninside\n{{/s}}", {"s": True}),
    case("mustache: not standalone (text on the line)", "a {{#s}}\nb\n{{/s}} c", {"s": True}),
    case("mustache: variables are never standalone", "a\n{{name}}\nb", {"name": ""}),
    case("mustache: two tags on a line are not standalone", "a\n{{#s}}{{/s}}\nb", {"s": True}),

    # -- mustache: checks ---------------------------------------------------------------------------
    case("mustache: missing variables", "{{a}} {{b}} {{#c}}x{{/c}}", {"a": 1}),
    case("mustache: unknown variable", "{{a}}", {"a": 1, "extra": True}),
    case("mustache: unknown ignored when not strict", "{{a}}", {"a": 1, "extra": True}, strict=False),
    case("mustache: schema types checked", "{{n}} {{#items}}{{.}}{{/items}} {{flag}} {{o.k}} {{s}}",
         {"n": "3", "items": "not a list", "flag": 1, "o": [1], "s": 5},
         declared=[{"name": "n", "type": "number"}, {"name": "items", "type": "list"},
                   {"name": "flag", "type": "boolean"}, {"name": "o", "type": "object"}, {"name": "s"}]),
    case("mustache: schema default and optional null", "limit={{limit}} note=[{{note}}] {{who}}",
         {"note": None, "who": "Ada"},
         declared=[{"name": "limit", "type": "number", "default": 3}, {"name": "note", "required": False},
                   {"name": "who"}]),
    case("mustache: schema default overridden", "limit={{limit}}", {"limit": 10},
         declared=[{"name": "limit", "type": "number", "default": 3}]),
    case("mustache: schema default of a list drives a section", "{{#tags}}#{{.}} {{/tags}}", {},
         declared=[{"name": "tags", "type": "list", "default": ["a", "b"]}]),
    case("mustache: null for a required variable is given", "[{{a}}]", {"a": None}),
    case("mustache: too large", "{{x}}" * 1001, {"x": "x" * 1000}),
    case("mustache: too large through a section", "{{#a}}" + "y" * 1000 + "{{/a}}", {"a": [1] * 1001}),
    case("mustache: too many steps", "{{^b}}{{/b}}{{#a}}{{#b}}{{/b}}{{/a}}", {"a": [1] * 1001, "b": [1] * 1000}),

    # -- mustache: invalid templates (refused when written; the client refuses them too) ------------
    case("invalid: handlebars each", "{{#each items}}x{{/each}}", {}),
    case("invalid: not a name", "{{CGI-1.output}}", {}),
    case("invalid: spaces in a name", "{{ not a name }}", {}),
    case("invalid: unclosed section", "a {{#s}}x", {}),
    case("invalid: unexpected close", "x{{/s}}", {}),
    case("invalid: mismatched close", "{{#a}}{{#b}}x{{/a}}{{/b}}", {}),
    case("invalid: set delimiter", "{{=<% %>=}}", {}),
    case("invalid: empty tag", "a {{}} b", {}),
    case("invalid: dot outside a section", "{{.}}", {}),
    case("invalid: bad triple", "{{{a b}}}", {}),
    case("invalid: too deep", "".join(f"{{{{#s{i}}}}}" for i in range(33)) + "x"
         + "".join(f"{{{{/s{i}}}}}" for i in reversed(range(33))), {}),
    case("invalid: malformed include", "{{> a@@b}}", {}),
    case("invalid: error on a later line", "ok {{a}}\nline 2\n{{#b}}{{/c}}", {}),
    case("include: left unresolved is refused", "Hi {{> support/tone}}", {}, http=False,
         note="the server resolves includes before rendering; a template given to the client must not have any"),

    # -- chat ---------------------------------------------------------------------------------------
    case("chat: variables and a placeholder", None, {"product": "PromptForge", "vip": True, "question": "Refund?"},
         messages=CHAT_BASE, placeholders={"history": HISTORY}),
    case("chat: optional section off, empty history", None, {"product": "PF", "vip": False, "question": "Q"},
         messages=CHAT_BASE, placeholders={"history": []}),
    case("chat: extra placeholders are ignored", None, {"product": "PF", "vip": False, "question": "Q"},
         messages=CHAT_BASE, placeholders={"history": [], "unused": [{"role": "user", "content": "x"}]}),
    case("chat: missing placeholder", None, {"product": "PF", "vip": False, "question": "Q"}, messages=CHAT_BASE),
    case("chat: missing variable and placeholder in one error", None, {"product": "PF", "vip": False},
         messages=CHAT_BASE),
    case("chat: placeholder with an invalid message", None, {"product": "PF", "vip": False, "question": "Q"},
         messages=CHAT_BASE, placeholders={"history": [{"role": "robot", "content": "beep"}]}, http=False,
         note="the HTTP request schema refuses this message before the engine sees it"),
    case("chat: placeholder that is not a list", None, {"product": "PF", "vip": False, "question": "Q"},
         messages=CHAT_BASE, placeholders={"history": "oops"}, http=False,
         note="the HTTP request schema refuses this before the engine sees it"),
    case("chat: plain format", None, {"name": "Ada", "n": 3},
         messages=[{"role": "system", "content": "{{#literal}} for {{ name }}"},
                   {"role": "user", "content": "n={{ n }}"}], fmt="plain"),
    case("chat: all roles, sections and unicode", None,
         {"items": [{"sku": "A"}, {"sku": "B"}], "who": "Zoë"},
         messages=[{"role": "system", "content": "Items:\n{{#items}}\n- {{sku}}\n{{/items}}"},
                   {"role": "user", "content": "I am {{who}} 👋"},
                   {"role": "assistant", "content": "Hello {{who}}"}, {"role": "tool", "content": "{\"ok\": true}"}]),
    case("chat: too large across messages", None, {"a": [1] * 600},
         messages=[{"role": "system", "content": "{{#a}}" + "y" * 1000 + "{{/a}}"},
                   {"role": "user", "content": "{{#a}}" + "z" * 1000 + "{{/a}}"}]),
    case("chat: invalid template in a message", None, {},
         messages=[{"role": "system", "content": "ok"}, {"role": "user", "content": "{{#each x}}{{/each}}"}]),
]


def _server() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from domain.composition import Target, resolve
    from domain.errors import Invalid
    from domain.prompt import _content
    from domain.template import check_values, render_messages, render_text

    return {"Target": Target, "resolve": resolve, "Invalid": Invalid, "_content": _content,
            "check_values": check_values, "render_messages": render_messages, "render_text": render_text}


def fetched(c: dict[str, Any], s: dict[str, Any]) -> tuple[list[str], list[dict] | None]:
    """(variables, variable_schema) as a fetch of this version returns them (its content validated as
    a write validates it, then composed)."""
    content = s["_content"](c["type"], c.get("template"), c.get("messages"), c["declared"], c["template_format"])
    target = s["Target"]("p", "vector", 1, None, content["type"], content["template"] if c["type"] == "text" else None,
                         content["messages"], content["template_format"], list(content["variables"]),
                         content["variable_schema"])
    composed = s["resolve"](target, lambda include: None)
    return composed.variables, composed.variable_schema


def render(c: dict[str, Any], variables: list[str], schema: list[dict] | None, s: dict[str, Any]) -> Any:
    """application.PromptForge.render_prompt, for one version without includes."""
    placeholders = c.get("placeholders")
    try:
        given = s["check_values"](schema, variables, c["values"], strict=c["strict"])
    except s["Invalid"] as exc:
        if c["type"] == "chat":
            missing = [m["name"] for m in c["messages"] if m.get("type") == "placeholder"
                       and m["name"] not in (placeholders or {})]
            if missing:
                exc.details.setdefault("problems", []).extend({"placeholder": n, "problem": "missing"} for n in missing)
                exc.details["missing_placeholders"] = missing
        raise
    if c["type"] == "chat":
        return s["render_messages"](c["messages"], given, placeholders or {}, c["template_format"])
    return s["render_text"](c["template"], given, c["template_format"])


def build() -> list[dict[str, Any]]:
    s = _server()
    out = []
    for c in CASES:
        c = json.loads(json.dumps(c))  # exactly what the JSON file will hold
        if c["name"].startswith("include:"):  # the server resolves includes first: render the text as it stands
            try:
                s["render_text"](c["template"], c["values"], c["template_format"])
            except s["Invalid"] as exc:
                out.append({**c, "error": {"at": "render", "code": exc.code, "details": exc.details}})
                continue
            raise AssertionError(f"{c['name']}: expected a refusal")
        try:
            variables, schema = fetched(c, s)
        except s["Invalid"] as exc:
            out.append({**c, "error": {"at": "create", "code": exc.code, "details": exc.details}})
            continue
        c.update(variables=variables, variable_schema=schema)
        try:
            c["expected"] = render(c, variables, schema, s)
        except s["Invalid"] as exc:
            c["error"] = {"at": "render", "code": exc.code, "details": exc.details}
        out.append(c)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when render_vectors.json is not up to date")
    args = parser.parse_args()
    text = json.dumps(build(), ensure_ascii=False, indent=1) + "\n"
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is stale: run {Path(__file__).name} to regenerate it", file=sys.stderr)
            return 1
        print(f"{OUT}: up to date ({len(json.loads(text))} cases)")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(json.loads(text))} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
