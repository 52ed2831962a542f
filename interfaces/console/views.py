"""Form fields to command arguments and read-model rows to what templates show (no decisions here:
the application validates everything these hand it)."""
from __future__ import annotations

import json
import re
from typing import Any

from interfaces.console.session import Form

_WORD = re.compile(r"\w+", re.UNICODE)
SNIPPET_CHARS = 220
ROLES = ("system", "user", "assistant", "tool", "placeholder")


# -- search highlights -------------------------------------------------------------------------
def terms_of(query: str) -> list[str]:
    return [w for w in dict.fromkeys(_WORD.findall(query.lower())) if len(w) > 1][:16]


def highlight(text: str, terms: list[str]) -> list[tuple[str, bool]]:
    """`text` as (piece, matched) segments; templates wrap matched pieces in <mark> (escaped)."""
    if not terms or not text:
        return [(text, False)]
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    out: list[tuple[str, bool]] = []
    last = 0
    for match in pattern.finditer(text):
        if match.start() > last:
            out.append((text[last:match.start()], False))
        out.append((match.group(0), True))
        last = match.end()
    if last < len(text):
        out.append((text[last:], False))
    return out


def snippet(text: str, terms: list[str]) -> str:
    """Around the first match (or the start), one line, at most SNIPPET_CHARS."""
    flat = " ".join(text.split())
    lower = flat.lower()
    hits = [lower.find(t) for t in terms if lower.find(t) >= 0]
    start = max(0, min(hits) - 60) if hits else 0
    piece = flat[start:start + SNIPPET_CHARS]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_CHARS < len(flat) else "")


def searchable(row: dict[str, Any]) -> str:
    if row.get("type") == "chat":
        return " ".join(m.get("content", "") for m in row.get("messages") or [])
    return row.get("template") or ""


# -- content fields ----------------------------------------------------------------------------
def parse_json_field(form: Form, name: str, what: str, kind: type) -> tuple[Any, str | None]:
    """An optional JSON field: (value or None when blank, problem)."""
    raw = form.get(name).strip()
    if not raw:
        return None, None
    try:
        value = json.loads(raw)
    except ValueError:
        return None, f"{what} is not valid JSON"
    if not isinstance(value, kind):
        return None, f"{what} must be a JSON {'object' if kind is dict else 'list'}"
    return value, None


def message_rows(form: Form) -> list[dict[str, str]]:
    """The chat editor's rows (`role_<i>`, `content_<i>`) as typed, blank rows included."""
    count = min(form.int("rows", 0) or 0, 200)
    return [{"role": form.get(f"role_{i}", "user"), "content": form.get(f"content_{i}")} for i in range(count)]


def messages_arg(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Rows to the command's messages: blank rows dropped, a placeholder row names its placeholder."""
    out = []
    for row in rows:
        if not row["content"].strip():
            continue
        if row["role"] == "placeholder":
            out.append({"type": "placeholder", "name": row["content"].strip()})
        else:
            out.append({"role": row["role"], "content": row["content"]})
    return out


def rows_of_messages(messages: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    return [{"role": "placeholder", "content": m["name"]} if m.get("type") == "placeholder"
            else {"role": m.get("role", "user"), "content": m.get("content", "")} for m in messages or []]


def content_text(version: dict[str, Any]) -> str:
    """A version's template, or its messages one per paragraph (for a diff of a whole review)."""
    if version.get("type") != "chat":
        return version.get("template") or ""
    return "\n".join(f"[{m.get('role') or 'placeholder ' + m.get('name', '')}] {m.get('content', '')}"
                     for m in version.get("messages") or [])


# -- render preview ----------------------------------------------------------------------------
def variable_fields(schema: list[dict[str, Any]] | None, names: list[str]) -> list[dict[str, Any]]:
    """The render form's inputs: one per declared variable (typed by the schema), else per name."""
    if schema is not None:
        return [{"name": v["name"], "type": v.get("type") or "string", "required": v.get("required", True),
                 "default": v.get("default"), "description": v.get("description") or ""} for v in schema]
    return [{"name": n, "type": "string", "required": True, "default": None, "description": ""} for n in names]


def _typed(kind: str, raw: str) -> tuple[Any, str | None]:
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            return None, "is not a number"
        return (int(number) if number.is_integer() and "." not in raw and "e" not in raw.lower() else number), None
    if kind == "boolean":
        if raw not in ("true", "false"):
            return None, "must be true or false"
        return raw == "true", None
    if kind in ("list", "object"):
        try:
            value = json.loads(raw)
        except ValueError:
            return None, f"must be a JSON {'list' if kind == 'list' else 'object'}"
        return value, None
    return raw, None


def render_values(fields: list[dict[str, Any]], form: Form) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values from the render form (a blank input is "not given"), and per-field problems of
    reading them; the domain checks the values themselves (types, required, unknown)."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for f in fields:
        raw = form.get(f"var_{f['name']}")
        if raw.strip() == "":
            continue
        value, problem = _typed(f["type"], raw.strip() if f["type"] != "string" else raw)
        if problem:
            problems[f["name"]] = problem
        else:
            values[f["name"]] = value
    return values, problems


def placeholder_values(names: list[str], form: Form) -> tuple[dict[str, list], dict[str, str]]:
    values: dict[str, list] = {}
    problems: dict[str, str] = {}
    for name in names:
        raw = form.get(f"ph_{name}").strip()
        if not raw:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            problems[name] = "must be a JSON list of messages"
            continue
        values[name] = value
    return values, problems


def problems_by_field(details: dict[str, Any]) -> dict[str, str]:
    """A RENDER_VARIABLES_MISMATCH's problems, keyed by variable (or placeholder) for inline display."""
    out: dict[str, str] = {}
    for p in details.get("problems", []):
        key = p.get("variable") or p.get("placeholder") or ""
        if p.get("problem") == "wrong_type":
            out[key] = f"expected {p.get('expected')}, got {p.get('got')}"
        elif p.get("problem") == "missing":
            out[key] = "is required"
        elif p.get("problem") == "unknown":
            out[key] = "is not a variable of this prompt"
        else:
            out[key] = str(p.get("problem", "is not valid"))
    return out
