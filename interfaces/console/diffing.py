"""Side-by-side diffs of two versions (per message for chat prompts): rows for the templates.

Presentation only: which lines changed is difflib's answer; long unchanged stretches are folded
to a few lines of context, and intraline highlights are computed only for lines short enough for
that to stay cheap (templates may hold 256 KiB)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from interfaces.http.routers.versions import _messages_diff

CONTEXT = 3
INTRALINE_MAX_CHARS = 400
INTRALINE_MAX_LINES = 200
#: Fields besides the content whose changes a diff lists.
FIELDS = ("variables", "variable_schema", "template_format", "model_config", "tags")


@dataclass
class Side:
    number: int | None
    segments: list[tuple[str, bool]] = field(default_factory=list)  # (text, changed)


@dataclass
class Row:
    kind: str  # same | changed | added | removed | fold
    left: Side | None = None
    right: Side | None = None
    folded: int = 0


def _whole(number: int | None, text: str, changed: bool = False) -> Side:
    return Side(number, [(text, changed)])


def _intraline(a: str, b: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    left: list[tuple[str, bool]] = []
    right: list[tuple[str, bool]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if a[i1:i2]:
            left.append((a[i1:i2], op != "equal"))
        if b[j1:j2]:
            right.append((b[j1:j2], op != "equal"))
    return left, right


def side_by_side(before: str, after: str) -> list[Row]:
    """Rows pairing the lines of `before` and `after`, unchanged runs folded to CONTEXT lines."""
    a, b = before.splitlines(), after.splitlines()
    rows: list[Row] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows.extend(Row("same", _whole(i1 + k + 1, a[i1 + k]), _whole(j1 + k + 1, b[j1 + k])) for k in range(i2 - i1))
        elif op == "delete":
            rows.extend(Row("removed", _whole(i + 1, a[i], True), None) for i in range(i1, i2))
        elif op == "insert":
            rows.extend(Row("added", None, _whole(j + 1, b[j], True)) for j in range(j1, j2))
        else:
            cheap = max(i2 - i1, j2 - j1) <= INTRALINE_MAX_LINES
            for k in range(max(i2 - i1, j2 - j1)):
                old = a[i1 + k] if i1 + k < i2 else None
                new = b[j1 + k] if j1 + k < j2 else None
                if old is not None and new is not None:
                    if cheap and len(old) <= INTRALINE_MAX_CHARS and len(new) <= INTRALINE_MAX_CHARS:
                        left, right = _intraline(old, new)
                        rows.append(Row("changed", Side(i1 + k + 1, left), Side(j1 + k + 1, right)))
                    else:
                        rows.append(Row("changed", _whole(i1 + k + 1, old, True), _whole(j1 + k + 1, new, True)))
                elif old is not None:
                    rows.append(Row("removed", _whole(i1 + k + 1, old, True), None))
                else:
                    rows.append(Row("added", None, _whole(j1 + k + 1, new or "", True)))
    return _fold(rows)


def _fold(rows: list[Row]) -> list[Row]:
    keep = [False] * len(rows)
    for i, row in enumerate(rows):
        if row.kind != "same":
            for k in range(max(0, i - CONTEXT), min(len(rows), i + CONTEXT + 1)):
                keep[k] = True
    out: list[Row] = []
    run = 0
    for row, kept in zip(rows, keep):
        if kept:
            if run:
                out.append(Row("fold", folded=run))
                run = 0
            out.append(row)
        else:
            run += 1
    if run:
        out.append(Row("fold", folded=run))
    return out


def _label(message) -> str:
    if message is None:
        return "(none)"
    return f"placeholder {message.name}" if message.type == "placeholder" else (message.role or "")


def messages(before: list[dict] | None, after: list[dict] | None) -> list[dict[str, Any]]:
    """Message by message, position by position (the positions the API's diff pairs), each side by side."""
    return [{"index": d.index, "before": _label(d.before), "after": _label(d.after),
             "rows": side_by_side((d.before.content if d.before else None) or "",
                                  (d.after.content if d.after else None) or "")}
            for d in _messages_diff(before or [], after or [], ("before", "after"))]


def versions(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The diff of two versions (rows of the catalogue, or entries of the aggregate)."""
    chat = a.get("type") == "chat"
    return {"chat": chat, "rows": [] if chat else side_by_side(a.get("template") or "", b.get("template") or ""),
            "messages": messages(a.get("messages"), b.get("messages")) if chat else [],
            "fields": {f: (a.get(f), b.get(f)) for f in FIELDS if a.get(f) != b.get(f)},
            "identical": a.get("template") == b.get("template") and a.get("messages") == b.get("messages")}
