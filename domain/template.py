"""Prompt templates for prompt model v2: formats, variables and their schema, chat messages, rendering.

Pure: no I/O, never evaluates code; every malformed template or value is an `Invalid` with a stable code.

Formats (`template_format` of a version):

* ``"plain"`` -- today's rules exactly (`domain.values`): ``{{ identifier }}`` placeholders are substituted
  with ``str(value)``; every other ``{{...}}`` text (``{{#each x}}``, ``{{CGI-1.output}}``, ``{{> x}}``) is
  literal. No sections, no includes, nothing is ever refused for its braces.
* ``"mustache"`` -- a strict subset of Mustache, rendered by pystache, never HTML-escaped:
  variables ``{{name}}``, dotted names ``{{a.b.c}}``, ``{{.}}`` (the current item, inside sections only),
  sections ``{{#x}}...{{/x}}`` (over a list: once per item, the item pushed as context; over an object or
  any other truthy value: once, with that value pushed), inverted sections ``{{^x}}...{{/x}}`` (when x is
  missing or falsy: null, false, 0, "", [] or {}), comments ``{{! ... }}``, ``{{{x}}}`` and ``{{&x}}``
  (identical to ``{{x}}`` since nothing is escaped), and includes ``{{> name}}``, ``{{> name@label}}``,
  ``{{> name#3}}`` (composition, resolved by `domain.composition` before rendering).
  Standalone lines (a section, comment or include tag alone on its line) vanish, as the Mustache spec says.

  Mustache-format rules this module adds (pystache would accept more, silently):

  - Every ``{{`` that has a ``}}`` after it opens a tag, and every tag must be one of the forms above.
    Handlebars or other brace text such as ``{{#each projects}}``, ``{{CGI-1.output}}``, ``{{#123.x#}}``,
    ``{{ not a name }}`` is refused with INVALID_TEMPLATE (naming the tag, its offset and line): it would
    otherwise render as nothing. Such templates keep working in the ``"plain"`` format, where that text is
    literal. A ``{{`` with no ``}}`` anywhere after it is literal text (as in Mustache).
  - Names are identifiers ``[A-Za-z_][A-Za-z0-9_]{0,63}``, optionally dotted (``a.b``); ``.`` only inside
    a section.
  - Sections must be balanced and properly nested (at most MAX_SECTION_DEPTH deep); set-delimiter tags
    (``{{=<% %>=}}``) are not supported; comments must not be empty.
  - Values render as: strings as they are, null as "", true/false as "true"/"false", numbers as JSON
    numbers, lists and objects as JSON (``["a", "b"]``). (``"plain"`` keeps Python's ``str(value)``.)

Top-level variables (mustache), the rule `variables_of` applies: a tag's variable is the first part of
its name (``a`` for ``a.b.c``). A ``{{#section}}`` pushes its value, and names inside it are looked up in
that value first, so a name used *only* inside ``{{#...}}`` sections is an item field, not a top-level
variable. A name inside a section is a top-level variable when it also appears outside every section, or
is the section's own name. Inverted sections push nothing: names inside ``{{^x}}...{{/x}}`` (outside any
``{{#...}}``) are top-level variables. (Rendering still falls back to the outer values for a name an item
lacks, as Mustache does; such a name just cannot be declared or passed on its own -- write it once
outside the section, or pass it inside the section's value.)

Why this module parses mustache itself (pystache 0.6.8 quirks, measured): pystache's parser drops text
silently for an unclosed section (``a {{#s}}x`` parses to ``['x']``), crashes on set-delimiter tags
(KeyError / IndexError), accepts any text as a tag name, and its tag regex is quadratic: 8000 ``{{``
take 3.4 s, a run of 8000 spaces not followed by a tag 0.18 s (262 144 would take minutes); its
renderer is recursive (deep nesting: RecursionError), keeps per-call state on the Renderer, and loads
partials from the file system unless given a dict. So a linear scanner here validates the text and
builds the very node tree ``pystache.parser.parse`` builds (same classes, same standalone-line rules;
the unit tests check both trees are equal on random texts), a measuring pass bounds the output size and
the work before anything is built, and pystache's renderer renders that tree.
"""
from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import pystache
from pystache.parsed import ParsedTemplate
from pystache.parser import _CommentNode, _EscapeNode, _InvertedNode, _LiteralNode, _PartialNode, _SectionNode

from domain.errors import Invalid
from domain.values import (
    _IDENTIFIER,
    _LABEL,
    MAX_LABEL,
    MAX_NAME,
    MAX_RENDERED,
    MAX_TEMPLATE,
    MAX_VARIABLES,
    PLACEHOLDER,
    _encodable,
    _has_control,
    placeholders,
)

FORMATS = ("mustache", "plain")
VARIABLE_TYPES = ("string", "number", "boolean", "list", "object")
ROLES = ("system", "user", "assistant", "tool")

MAX_MESSAGES = 200
MAX_DESCRIPTION = 500
#: A declared default, as JSON, at most this many characters.
MAX_DEFAULT = 16_384
#: Sections (and inverted sections) nest at most this deep.
MAX_SECTION_DEPTH = 32
#: Nodes visited while rendering (sections over long lists multiply them even when they print nothing).
MAX_RENDER_STEPS = 1_000_000
#: Messages a chat render may produce, spliced placeholders included.
MAX_RENDERED_MESSAGES = 10_000
#: Values nest at most this deep (lists and objects).
MAX_VALUE_DEPTH = 64

_SCHEMA_KEYS = ("name", "type", "required", "default", "description")
_SIGILS = "!>&/#^"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_]{0,63})*")
_TRIPLE = re.compile(r"\{\{\s*\{\s*([^\s{}]+)\s*\}\s*\}\}")
_INCLUDE = re.compile(r"([^@#]*)(?:@([^@#]*)|#([^@#]*))?")
_VERSION = re.compile(r"[1-9][0-9]{0,9}")
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_MAX_INT_BITS = 14_000  # Python refuses to print integers of more than 4300 digits
_DELIMITERS = ("{{", "}}")


# -- includes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Include:
    """A composition reference found in a mustache template."""

    #: The referenced prompt's name (NFC); may be a folder path (`support/billing/refund`).
    name: str
    #: `{{> name@label}}` (lower-cased); None otherwise.
    label: str | None
    #: `{{> name#3}}`; None otherwise.
    version: int | None
    #: The tag exactly as written, e.g. "{{> support/x@staging}}".
    tag: str
    #: Where the tag starts in the text it was found in (composition inlines by position).
    offset: int = -1

    @property
    def selector_label(self) -> str | None:
        """The label the reference goes through: `{{> name}}` means "production"; None for a version."""
        if self.version is not None:
            return None
        return self.label or "production"


# -- parsing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Var:
    key: str
    raw: bool  # {{{x}}} or {{&x}}: pystache's _LiteralNode (identical output: nothing is escaped)


@dataclass(frozen=True)
class _Section:
    key: str
    inverted: bool
    children: tuple
    begin: int
    end: int


@dataclass(frozen=True)
class _Comment:
    pass


@dataclass(frozen=True)
class _Partial:
    key: str
    indent: str


@dataclass(frozen=True)
class _Parsed:
    children: tuple
    tree: ParsedTemplate
    variables: tuple[str, ...]
    #: Every name used anywhere, sections included (what a schema may declare).
    mentioned: tuple[str, ...]
    includes: tuple[Include, ...]
    first_include: tuple[str, int] | None  # (tag, offset)


def _check_format(template_format: Any) -> str:
    if not isinstance(template_format, str) or template_format not in FORMATS:
        raise Invalid(f"template_format must be one of {', '.join(FORMATS)}", code="INVALID_TEMPLATE_FORMAT",
                      details={"format": template_format if isinstance(template_format, str) else None,
                               "allowed": list(FORMATS)})
    return template_format


def _check_basic(text: Any) -> str:
    if not isinstance(text, str):
        raise Invalid("template must be a string", code="INVALID_TEMPLATE", details={"problem": "not_a_string"})
    if len(text) > MAX_TEMPLATE:
        raise Invalid(f"template exceeds {MAX_TEMPLATE} characters", code="INVALID_TEMPLATE",
                      details={"problem": "too_large", "max": MAX_TEMPLATE})
    if "\x00" in text or not _encodable(text):
        bad = _BAD_CHARS.search(text)
        offset = bad.start() if bad else 0
        raise Invalid("template may not contain NUL characters or unpaired surrogates", code="INVALID_TEMPLATE",
                      details={"problem": "bad_character", "offset": offset, "line": _line(text, offset)})
    return text


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _shown(tag: str) -> str:
    return tag if len(tag) <= 120 else tag[:119] + "\u2026"


def _refuse(text: str, offset: int, tag: str, problem: str, message: str, **extra: Any) -> Invalid:
    line = _line(text, offset)
    return Invalid(f"{message} (tag {_shown(tag)!r} at line {line}, offset {offset})", code="INVALID_TEMPLATE",
                   details={"problem": problem, "tag": _shown(tag), "offset": offset, "line": line, **extra})


_NAME_HINT = ("names are identifiers, optionally dotted (a.b); to keep other {{...}} text literal, "
              "use template_format \"plain\"")


def _include(text: str, ref: str, tag: str, offset: int) -> Include:
    def bad(why: str) -> Invalid:
        return _refuse(text, offset, tag, "invalid_include",
                       f"malformed include: {why}; write {{{{> name}}}}, {{{{> name@label}}}} or {{{{> name#3}}}}")

    match = _INCLUDE.fullmatch(ref)
    if match is None:
        raise bad("at most one '@label' or '#version'")
    name = unicodedata.normalize("NFC", match.group(1))
    if not name or len(name) > MAX_NAME:
        raise bad(f"the name must be 1..{MAX_NAME} characters")
    for segment in name.split("/"):
        if not segment or segment != segment.strip() or segment in (".", ".."):
            raise bad("folder segments must be non-empty, without surrounding spaces, not '.' or '..'")
        if _has_control(segment, allowed="") or "{" in segment or "}" in segment:
            raise bad("the name may not contain control characters or braces")
    label = version = None
    if match.group(2) is not None:
        label = match.group(2).lower()
        if not label or len(label) > MAX_LABEL or not _LABEL.fullmatch(label):
            raise bad(f"invalid label {match.group(2)!r}")
    if match.group(3) is not None:
        if not _VERSION.fullmatch(match.group(3)):
            raise bad(f"the version must be a positive integer, not {match.group(3)!r}")
        version = int(match.group(3))
    return Include(name=name, label=label, version=version, tag=tag, offset=offset)


@functools.lru_cache(maxsize=32)
def _parse(text: str) -> _Parsed:
    """Validate a mustache template and build pystache's node tree for it, in one linear pass.

    Tags are found as pystache's tag regex finds them (each `{{` up to the next `}}`, or `{{{name}}}`),
    and standalone lines are handled exactly as pystache.parser does; anything pystache would read in
    a surprising way is refused instead."""
    n = len(text)
    root: list = []
    children = root
    stack: list[tuple[str, bool, str, int, list, int]] = []  # key, inverted, tag, offset, parent, begin
    scope = 0  # open {{#...}} sections
    first_use: dict[str, None] = {}
    top: set[str] = set()
    includes: list[Include] = []
    first_include: tuple[str, int] | None = None
    pos = 0
    while True:
        i = text.find("{{", pos)
        if i < 0:
            break
        close = text.find("}}", i + 2)
        if close < 0:
            break  # no tag can close: the rest is literal, as in Mustache
        content = text[i + 2:close].lstrip()
        if content.startswith("{"):
            triple = _TRIPLE.match(text, i)
            if triple is None:
                raise _refuse(text, i, text[i:close + 2], "invalid_tag",
                              "a triple mustache must be {{{name}}}")
            end, sigil, key = triple.end(), "{", triple.group(1)
        else:
            end = close + 2
            if content.startswith("="):
                raise _refuse(text, i, text[i:end], "set_delimiter", "set-delimiter tags are not supported")
            sigil = content[0] if content and content[0] in _SIGILS else ""
            key = content[len(sigil):].strip()
        tag = text[i:end]
        if not key:
            raise _refuse(text, i, tag, "empty_tag", "empty tag")
        if sigil not in ("!", ">", "/"):
            if not (_NAME.fullmatch(key) or (key == "." and scope > 0)):
                what = "'.' names the current item, only inside a section" if key == "." else (
                    f"{key!r} is not a variable name: {_NAME_HINT}")
                raise _refuse(text, i, tag, "invalid_name", what)

        # Standalone lines, as pystache.parser: a non-interpolating tag alone on its line takes the line.
        ws = i
        while ws > pos and text[ws - 1] in " \t":
            ws -= 1
        starts_line = ws == 0 or text[ws - 1] in "\r\n"
        ends_line = end == n or text[end] in "\r\n"
        indent = ""
        if starts_line and ends_line and sigil not in ("", "&", "{"):
            match_index = ws
            indent = text[ws:i]
            if end < n and text[end] == "\r":
                end += 1
            if end < n and text[end] == "\n":
                end += 1
        else:
            match_index = i
        if match_index > pos:
            children.append(text[pos:match_index])
        pos = end

        if sigil == "!":
            children.append(_Comment())
        elif sigil == ">":
            include = _include(text, key, tag, i)
            includes.append(include)
            if first_include is None:
                first_include = (tag, i)
            children.append(_Partial(key, indent))
        elif sigil in ("#", "^"):
            if len(stack) >= MAX_SECTION_DEPTH:
                raise _refuse(text, i, tag, "too_deep", f"sections nest at most {MAX_SECTION_DEPTH} deep")
            _use(key, scope, first_use, top)
            stack.append((key, sigil == "^", tag, i, children, pos))
            children = []
            if sigil == "#":
                scope += 1
        elif sigil == "/":
            if not stack:
                raise _refuse(text, i, tag, "unexpected_close", f"{tag} closes no open section")
            open_key, inverted, open_tag, open_offset, parent, begin = stack.pop()
            if key != open_key:
                raise _refuse(text, i, tag, "mismatched_close",
                              f"{tag} does not close {open_tag} (line {_line(text, open_offset)})",
                              expected="{{/" + open_key + "}}", open_tag=_shown(open_tag), open_offset=open_offset)
            parent.append(_Section(key, inverted, tuple(children), begin, match_index))
            children = parent
            if not inverted:
                scope -= 1
        else:
            _use(key, scope, first_use, top)
            children.append(_Var(key, raw=sigil != ""))
    if stack:
        open_key, _, open_tag, open_offset, _, _ = stack[-1]
        raise _refuse(text, open_offset, open_tag, "unclosed_section",
                      f"{open_tag} is never closed by {{{{/{open_key}}}}}", open=[entry[0] for entry in stack])
    if pos < n:
        children.append(text[pos:])
    root_children = tuple(root)
    return _Parsed(root_children, _to_pystache(root_children, text), tuple(v for v in first_use if v in top),
                   tuple(first_use), tuple(includes), first_include)


def _use(key: str, scope: int, first_use: dict[str, None], top: set[str]) -> None:
    if key == ".":
        return
    head = key.split(".", 1)[0]
    first_use.setdefault(head, None)
    if scope == 0:
        top.add(head)


def _to_pystache(children: tuple, text: str) -> ParsedTemplate:
    tree = ParsedTemplate()
    for node in children:
        if type(node) is str:
            tree.add(node)
        elif type(node) is _Var:
            tree.add(_LiteralNode(node.key) if node.raw else _EscapeNode(node.key))
        elif type(node) is _Section:
            inner = _to_pystache(node.children, text)
            if node.inverted:
                tree.add(_InvertedNode(node.key, inner))
            else:
                tree.add(_SectionNode(node.key, inner, _DELIMITERS, text, node.begin, node.end))
        elif type(node) is _Comment:
            tree.add(_CommentNode())
        else:
            tree.add(_PartialNode(node.key, node.indent))
    return tree


def _parsed(text: Any) -> _Parsed:
    return _parse(_check_basic(text))


# -- the template API ----------------------------------------------------------------------------


def variables_of(text: str, template_format: str = "mustache") -> list[str]:
    """Top-level variable names used by the text, first-use order (see the module docstring for the
    rule inside sections). Mustache text that is not a valid template raises INVALID_TEMPLATE."""
    if _check_format(template_format) == "plain":
        return placeholders(_check_basic(text))
    return list(_parsed(text).variables)


def names_of(text: str, template_format: str = "mustache") -> list[str]:
    """Every variable name the text mentions, inside sections too, first-use order: what a schema may
    declare (a name used only inside a section may be a field of the section's items, or a top-level
    value, as in `{{#verbose}}Explain {{topic}}{{/verbose}}`; declaring it says which)."""
    if _check_format(template_format) == "plain":
        return placeholders(_check_basic(text))
    return list(_parsed(text).mentioned)


def includes_of(text: str, template_format: str = "mustache") -> list[Include]:
    """Composition references, in order, one per tag (a tag written twice is listed twice); plain: []."""
    if _check_format(template_format) == "plain":
        _check_basic(text)
        return []
    return list(_parsed(text).includes)


def check_text(text: str, template_format: str = "mustache") -> None:
    """Raise Invalid INVALID_TEMPLATE for text that is not a valid, non-blank template of that format.

    details: {"problem": ..., "tag": the offending tag, "offset": of its `{{`, "line": 1-based, ...}
    (problems: invalid_name, invalid_tag, empty_tag, set_delimiter, invalid_include, unexpected_close,
    mismatched_close, unclosed_section, too_deep; not_a_string, too_large, bad_character, empty)."""
    fmt = _check_format(template_format)
    _check_basic(text)
    if not text.strip():
        raise Invalid("template must be a non-empty string", code="INVALID_TEMPLATE", details={"problem": "empty"})
    if fmt == "mustache":
        _parse(text)


# -- variables and their schema ------------------------------------------------------------------


def _invalid_variables(message: str, **details: Any) -> Invalid:
    return Invalid(message, code="INVALID_VARIABLES", details=details)


def _mismatch(declared: list[str], used: list[str], mentioned: list[str] | None = None) -> None:
    undeclared = [v for v in used if v not in declared]
    unused = [v for v in declared if v not in (mentioned if mentioned is not None else used)]
    if undeclared or unused:
        raise Invalid("declared variables must match the template's variables", code="VARIABLES_MISMATCH",
                      details={"undeclared": undeclared, "unused": unused})


def clean_variables(declared: list | None, used: list[str],
                    mentioned: list[str] | None = None) -> tuple[list[str], list[dict] | None]:
    """(names, schema) for a version's declared variables.

    * None: names = `used`, no schema.
    * a list of names: as today (`domain.values.clean_template`): identifiers, de-duplicated, matching
      `used` (VARIABLES_MISMATCH {undeclared, unused}): every used name declared, and every declared
      name `used` or, when given, `mentioned` (a name used only inside a section); no schema.
    * a list of objects {name, type="string", required=True, default=None, description=""}: the schema,
      names matching `used` the same way. A default must be JSON of the variable's type and makes the
      variable optional: `required` may be left out then (it becomes False), but `required: true` with a
      default is refused. Returned as plain dicts with every key filled, in the declared order.

    INVALID_VARIABLES (details name the index and problem) for anything else: more than MAX_VARIABLES,
    names and objects mixed, unknown keys, bad names, types, defaults or descriptions, duplicates."""
    used = list(used)
    if declared is None:
        return used, None
    if not isinstance(declared, (list, tuple)):
        raise _invalid_variables("variables must be a list of names or of objects", problem="not_a_list")
    if len(declared) > MAX_VARIABLES:
        raise _invalid_variables(f"at most {MAX_VARIABLES} variables", problem="too_many", max=MAX_VARIABLES)
    objects = [v for v in declared if isinstance(v, dict)]
    if not objects:
        bad = [v for v in declared if not isinstance(v, str) or not _IDENTIFIER.match(v)]
        if bad:
            raise _invalid_variables("variable names must be identifiers", invalid=bad)
        names = list(dict.fromkeys(declared))
        _mismatch(names, used, mentioned)
        return names, None
    if len(objects) != len(declared):
        if any(isinstance(v, str) for v in declared):
            raise _invalid_variables("variables are either all names or all objects, not a mix", problem="mixed")
        index = next(i for i, v in enumerate(declared) if not isinstance(v, dict))
        raise _invalid_variables(f"variable {index} must be an object", index=index, problem="not_an_object")
    schema: list[dict] = []
    for index, spec in enumerate(declared):
        schema.append(_clean_spec(index, spec))
    names = [spec["name"] for spec in schema]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _invalid_variables("each variable is declared once", problem="duplicate", duplicates=duplicates)
    _mismatch(names, used, mentioned)
    return names, schema


def _clean_spec(index: int, spec: dict) -> dict:
    unknown = [k for k in spec if k not in _SCHEMA_KEYS]
    if unknown:
        raise _invalid_variables(f"variable {index}: unknown keys {', '.join(map(str, unknown))}", index=index,
                                 problem="unknown_keys", keys=[str(k) for k in unknown], allowed=list(_SCHEMA_KEYS))
    name = spec.get("name")
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise _invalid_variables(f"variable {index}: name must be an identifier", index=index, problem="invalid_name",
                                 invalid=[name] if isinstance(name, (str, int, float, bool)) or name is None else [])
    where = {"index": index, "variable": name}
    kind = spec.get("type", "string")
    if not isinstance(kind, str) or kind not in VARIABLE_TYPES:
        raise _invalid_variables(f"variable {name!r}: type must be one of {', '.join(VARIABLE_TYPES)}", **where,
                                 problem="invalid_type", allowed=list(VARIABLE_TYPES))
    default = spec.get("default")
    required = spec.get("required", default is None)
    if not isinstance(required, bool):
        raise _invalid_variables(f"variable {name!r}: required must be true or false", **where,
                                 problem="invalid_required")
    if default is not None:
        if required:
            raise _invalid_variables(f"variable {name!r}: a required variable cannot have a default", **where,
                                     problem="default_with_required")
        try:
            default = _json_copy(default)
        except _NotJson:
            raise _invalid_variables(f"variable {name!r}: the default must be plain JSON", **where,
                                     problem="invalid_default") from None
        if not _is_type(default, kind):
            raise _invalid_variables(f"variable {name!r}: the default must be a {kind}", **where,
                                     problem="default_wrong_type", expected=kind, got=_json_type(default))
        if len(json.dumps(default, ensure_ascii=False)) > MAX_DEFAULT:
            raise _invalid_variables(f"variable {name!r}: the default exceeds {MAX_DEFAULT} characters of JSON",
                                     **where, problem="default_too_large", max=MAX_DEFAULT)
    description = spec.get("description")
    description = "" if description is None else description
    if not isinstance(description, str):
        raise _invalid_variables(f"variable {name!r}: description must be a string", **where,
                                 problem="invalid_description")
    description = description.strip()
    if len(description) > MAX_DESCRIPTION or _has_control(description) or not _encodable(description):
        raise _invalid_variables(f"variable {name!r}: description must be at most {MAX_DESCRIPTION} printable "
                                 "characters", **where, problem="invalid_description", max=MAX_DESCRIPTION)
    return {"name": name, "type": kind, "required": required, "default": default, "description": description}


# -- values ----------------------------------------------------------------------------------------


class _NotJson(Exception):
    pass


def _json_copy(value: Any, depth: int = 0) -> Any:
    """A plain-JSON copy (str, int, float, bool, None, list, dict with str keys) or _NotJson.

    Only those exact built-in types (and tuples, as lists) are accepted, so rendering never calls a
    method of the caller's objects (pystache would call an object's attributes for `{{name}}`)."""
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is str:
        if not _encodable(value):
            raise _NotJson
        return value
    if kind is int:
        if value.bit_length() > _MAX_INT_BITS:
            raise _NotJson
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _NotJson
        return value
    if depth >= MAX_VALUE_DEPTH:
        raise _NotJson
    if kind is list or kind is tuple:
        return [_json_copy(item, depth + 1) for item in value]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or not _encodable(key):
                raise _NotJson
            out[key] = _json_copy(item, depth + 1)
        return out
    raise _NotJson


def _json_type(value: Any) -> str:
    """The JSON type of a value, as problems report it ("unsupported" for what JSON cannot carry)."""
    try:
        value = _json_copy(value)
    except _NotJson:
        return "unsupported"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    return isinstance(value, dict)


def _values_mismatch(missing: list, unknown: list, problems: list,
                     message: str = "values do not match the template's variables") -> Invalid:
    return Invalid(message, code="RENDER_VARIABLES_MISMATCH",
                   details={"missing": missing, "unknown": unknown, "problems": problems})


def check_values(schema: list[dict] | None, names: list[str], values: dict, *, strict: bool = True) -> dict:
    """The values to render with, validated against the schema (or, without one, the names).

    Raises RENDER_VARIABLES_MISMATCH with details {"missing", "unknown", "problems"} listing every
    problem at once; a problem is {"variable", "problem": "missing"|"unknown"|"wrong_type"} (wrong_type
    adds "expected" and "got", JSON type names; "got" is "unsupported" for what JSON cannot carry:
    NaN, objects, non-string keys, unpaired surrogates, nesting deeper than MAX_VALUE_DEPTH).

    * Without a schema every name is required and a value may be any JSON.
    * With a schema (it wins over `names`): a value must be of its variable's type; null for an optional
      variable means "not given". A missing optional variable gets a copy of its default, or stays absent
      (it renders as empty text) when it has none.
    * `strict=False` tolerates unknown variables: they are left out of the result.
    The result holds plain-JSON copies, in declaration order."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise _values_mismatch([], [], [{"problem": "wrong_type", "expected": "object", "got": _json_type(values)}],
                               "values must be an object")
    specs = schema if schema is not None else [
        {"name": n, "type": None, "required": True, "default": None} for n in dict.fromkeys(names)]
    declared = {spec["name"] for spec in specs}
    missing: list[str] = []
    unknown: list[str] = []
    problems: list[dict] = []
    out: dict[str, Any] = {}
    for spec in specs:
        name, kind = spec["name"], spec.get("type")
        required = spec.get("required", True)
        given = name in values and not (values[name] is None and not required)
        if not given:
            if required:
                missing.append(name)
                problems.append({"variable": name, "problem": "missing"})
            elif spec.get("default") is not None:
                out[name] = _json_copy(spec["default"])
            continue
        try:
            value = _json_copy(values[name])
        except _NotJson:
            problems.append({"variable": name, "problem": "wrong_type", "expected": kind or "json",
                             "got": "unsupported"})
            continue
        if kind is not None and not _is_type(value, kind):
            problems.append({"variable": name, "problem": "wrong_type", "expected": kind, "got": _json_type(value)})
            continue
        out[name] = value
    if strict:
        for key in values:
            if key not in declared:
                unknown.append(str(key))
                problems.append({"variable": str(key), "problem": "unknown"})
    if problems:
        raise _values_mismatch(missing, unknown, problems)
    return out


# -- rendering -------------------------------------------------------------------------------------


class _Budget:
    """What one render may still produce (characters) and do (nodes visited)."""

    def __init__(self) -> None:
        self.chars = 0
        self.steps = 0

    def add(self, count: int) -> None:
        self.chars += count
        if self.chars > MAX_RENDERED:
            raise Invalid(f"rendered text would exceed {MAX_RENDERED} characters", code="RENDER_TOO_LARGE",
                          details={"max": MAX_RENDERED})

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > MAX_RENDER_STEPS:
            raise Invalid(f"rendering would take more than {MAX_RENDER_STEPS} steps (sections over long lists)",
                          code="RENDER_TOO_LARGE", details={"max": MAX_RENDERED, "max_steps": MAX_RENDER_STEPS})


def _render_values(values: Any) -> dict:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise _values_mismatch([], [], [{"problem": "wrong_type", "expected": "object", "got": _json_type(values)}],
                               "values must be an object")
    out, problems = {}, []
    for key, value in values.items():
        try:
            if not isinstance(key, str):
                raise _NotJson
            out[key] = _json_copy(value)
        except _NotJson:
            problems.append({"variable": str(key), "problem": "wrong_type", "expected": "json", "got": "unsupported"})
    if problems:
        raise _values_mismatch([], [], problems, "values must be plain JSON")
    return out


def _text_of(value: Any) -> str:
    """How a mustache variable prints a (plain JSON) value."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


class _Renderer(pystache.Renderer):
    def str_coerce(self, val: Any) -> str:
        return _text_of(val)


def _lookup(stack: list, key: str) -> Any:
    """pystache.context.ContextStack.get with missing_tags="ignore", for plain JSON values."""
    if key == ".":
        return stack[-1]
    parts = key.split(".")
    for item in reversed(stack):
        if isinstance(item, dict) and parts[0] in item:
            result = item[parts[0]]
            break
    else:
        return ""
    for part in parts[1:]:
        if not isinstance(result, dict) or part not in result:
            return ""
        result = result[part]
    return result


def _measure(children: tuple, stack: list, budget: _Budget) -> None:
    """Walk the tree as pystache will render it, counting characters and steps, building nothing."""
    for node in children:
        budget.step()
        kind = type(node)
        if kind is str:
            budget.add(len(node))
        elif kind is _Var:
            budget.add(len(_text_of(_lookup(stack, node.key))))
        elif kind is _Section:
            data = _lookup(stack, node.key)
            if node.inverted:
                if not data:
                    _measure(node.children, stack, budget)
                continue
            items = [] if not data else data if isinstance(data, list) else [data]
            budget.step(len(items))
            for item in items:
                stack.append(item)
                _measure(node.children, stack, budget)
                stack.pop()


def _render(text: str, values: Any, template_format: str, budget: _Budget) -> str:
    if template_format == "plain":
        _check_basic(text)
        values = _render_values(values)
        texts = {name: str(values[name]) for name in placeholders(text) if name in values}
        size = len(text) + sum(len(texts.get(m.group(1), "")) for m in PLACEHOLDER.finditer(text))
        budget.add(size)  # an upper bound: the placeholders themselves are removed
        return PLACEHOLDER.sub(lambda m: texts.get(m.group(1), ""), text)
    parsed = _parsed(text)
    if parsed.first_include is not None:
        tag, offset = parsed.first_include
        raise _refuse(text, offset, tag, "unresolved_include",
                      "includes must be resolved before rendering")
    values = _render_values(values)
    before = budget.chars
    _measure(parsed.children, [values], budget)
    out = _Renderer(escape=lambda s: s, missing_tags="ignore", partials={}).render(parsed.tree, values)
    budget.chars = before
    budget.add(len(out))
    return out


def render_text(text: str, values: dict, template_format: str = "mustache") -> str:
    """Render a template; never HTML-escapes. Includes must have been resolved (a remaining `{{> ...}}`
    is INVALID_TEMPLATE, problem "unresolved_include"). A name without a value renders as empty text
    (check_values decides what is missing). RENDER_TOO_LARGE beyond MAX_RENDERED characters (or
    MAX_RENDER_STEPS steps), checked before the text is built; RENDER_VARIABLES_MISMATCH for values that
    are not plain JSON. "plain": today's `domain.values.render` substitution (str(value))."""
    return _render(text, values, _check_format(template_format), _Budget())


# -- chat messages ---------------------------------------------------------------------------------


def _invalid_messages(message: str, **details: Any) -> Invalid:
    return Invalid(message, code="INVALID_MESSAGES", details=details)


def clean_messages(messages: list, template_format: str = "mustache") -> list[dict]:
    """A chat version's messages, as new dicts: {"role", "content"} or {"type": "placeholder", "name"}.

    A non-empty list of at most MAX_MESSAGES; roles in ROLES; content a non-blank template of the
    format (its errors are INVALID_TEMPLATE with the message "index" added to the details), all contents
    together at most MAX_TEMPLATE characters; placeholder names identifiers, each used once. Anything
    else is INVALID_MESSAGES with details {"index", "problem"} (problems: not_a_list, empty, too_many,
    not_an_object, unknown_keys, invalid_role, invalid_content, invalid_placeholder_name,
    duplicate_placeholder, too_large)."""
    fmt = _check_format(template_format)
    if not isinstance(messages, (list, tuple)):
        raise _invalid_messages("messages must be a list", problem="not_a_list")
    if not messages:
        raise _invalid_messages("a chat prompt needs at least one message", problem="empty")
    if len(messages) > MAX_MESSAGES:
        raise _invalid_messages(f"at most {MAX_MESSAGES} messages", problem="too_many", max=MAX_MESSAGES)
    out: list[dict] = []
    seen: set[str] = set()
    total = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid_messages(f"message {index} must be an object", index=index, problem="not_an_object")
        if "type" in message:
            if message["type"] != "placeholder":
                raise _invalid_messages(f"message {index}: type must be \"placeholder\"", index=index,
                                        problem="invalid_type")
            extra = [str(k) for k in message if k not in ("type", "name")]
            if extra:
                raise _invalid_messages(f"message {index}: unknown keys {', '.join(extra)}", index=index,
                                        problem="unknown_keys", keys=extra)
            name = message.get("name")
            if not isinstance(name, str) or not _IDENTIFIER.match(name):
                raise _invalid_messages(f"message {index}: a placeholder's name must be an identifier", index=index,
                                        problem="invalid_placeholder_name")
            if name in seen:
                raise _invalid_messages(f"message {index}: placeholder {name!r} is used twice", index=index,
                                        problem="duplicate_placeholder", name=name)
            seen.add(name)
            out.append({"type": "placeholder", "name": name})
            continue
        extra = [str(k) for k in message if k not in ("role", "content")]
        if extra:
            raise _invalid_messages(f"message {index}: unknown keys {', '.join(extra)}", index=index,
                                    problem="unknown_keys", keys=extra)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise _invalid_messages(f"message {index}: role must be one of {', '.join(ROLES)}", index=index,
                                    problem="invalid_role", allowed=list(ROLES))
        content = message.get("content")
        if not isinstance(content, str):
            raise _invalid_messages(f"message {index}: content must be a string", index=index,
                                    problem="invalid_content")
        try:
            check_text(content, fmt)
        except Invalid as error:  # check_text raises only INVALID_TEMPLATE here (the format was checked)
            raise Invalid(f"message {index}: {error.message}", code="INVALID_TEMPLATE",
                          details={**error.details, "index": index}) from None
        total += len(content)
        if total > MAX_TEMPLATE:
            raise _invalid_messages(f"messages exceed {MAX_TEMPLATE} characters in all", index=index,
                                    problem="too_large", max=MAX_TEMPLATE)
        out.append({"role": role, "content": content})
    return out


def message_text(messages: list[dict]) -> str:
    """All message contents joined by blank lines (what search indexes and embeds); placeholders skipped."""
    return "\n\n".join(m["content"] for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str))


def _spliced(name: str, given: Any, problems: list[dict]) -> list[dict]:
    if not isinstance(given, (list, tuple)):
        problems.append({"placeholder": name, "problem": "wrong_type", "expected": "list", "got": _json_type(given)})
        return []
    out = []
    for index, message in enumerate(given):
        reason = None
        if not isinstance(message, dict):
            reason = "a message must be an object {role, content}"
        elif any(k not in ("role", "content") for k in message):
            reason = "a message has only role and content"
        elif message.get("role") not in ROLES:
            reason = f"role must be one of {', '.join(ROLES)}"
        elif not isinstance(message.get("content"), str) or not _encodable(message["content"]):
            reason = "content must be a string"
        if reason:
            problems.append({"placeholder": name, "index": index, "problem": "invalid_message", "reason": reason})
        else:
            out.append({"role": message["role"], "content": str(message["content"])})
    return out


def render_messages(messages: list[dict], values: dict, placeholders: dict[str, list] | None,
                    template_format: str = "mustache") -> list[dict]:
    """Render every message's content and splice each placeholder with the caller's messages.

    `placeholders` maps a placeholder's name to a list of {role, content} messages, inserted as given
    (not rendered). RENDER_VARIABLES_MISMATCH lists every placeholder problem at once: {"placeholder",
    "problem": "missing"} when a placeholder has no entry, "wrong_type" when the entry is not a list,
    "invalid_message" (with "index" and "reason") for a bad message in it; details also carry
    "missing_placeholders". Placeholders given but not in the messages are ignored. The whole output is
    bounded like render_text (RENDER_TOO_LARGE), and at most MAX_RENDERED_MESSAGES messages."""
    fmt = _check_format(template_format)
    messages = clean_messages(messages, fmt)
    placeholders = {} if placeholders is None else placeholders
    if not isinstance(placeholders, dict):
        raise _values_mismatch([], [], [{"problem": "wrong_type", "expected": "object",
                                         "got": _json_type(placeholders)}], "placeholders must be an object")
    problems: list[dict] = []
    splices: dict[str, list[dict]] = {}
    for message in messages:
        if "name" in message:
            name = message["name"]
            if name not in placeholders:
                problems.append({"placeholder": name, "problem": "missing"})
            else:
                splices[name] = _spliced(name, placeholders[name], problems)
    if problems:
        error = _values_mismatch([], [], problems, "placeholders do not match the messages")
        error.details["missing_placeholders"] = [p["placeholder"] for p in problems if p["problem"] == "missing"]
        raise error
    count = sum(len(splices.get(m.get("name"), ())) if "name" in m else 1 for m in messages)
    if count > MAX_RENDERED_MESSAGES:
        raise Invalid(f"rendering would produce more than {MAX_RENDERED_MESSAGES} messages", code="RENDER_TOO_LARGE",
                      details={"max": MAX_RENDERED, "max_messages": MAX_RENDERED_MESSAGES})
    budget = _Budget()
    out: list[dict] = []
    for index, message in enumerate(messages):
        if "name" in message:
            for spliced in splices[message["name"]]:
                budget.add(len(spliced["content"]))
                out.append(dict(spliced))
            continue
        try:
            content = _render(message["content"], values, fmt, budget)
        except Invalid as error:
            error.details.setdefault("index", index)
            raise
        out.append({"role": message["role"], "content": content})
    return out
