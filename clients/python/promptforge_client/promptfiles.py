"""Prompts as code: one file per prompt, YAML front matter + the template as the body.

    DIR/support/billing/refund.md          (the prompt `support/billing/refund`)

    ---
    name: support/billing/refund
    type: text                      # or chat (then `messages:` below, and no body)
    template_format: mustache       # or plain
    labels: [staging, production]   # labels that point at THIS content (moved here on import)
    tags: [billing, support]
    model_config: {model: gpt-4o-mini, temperature: 0.2}
    variables:                      # optional: names, or a schema [{name, type, required, default, description}]
    - {name: product, type: string}
    ---
    You support {{product}}. ...

The body is the template exactly, plus one final newline (which is not part of the template: a
template that ends with a newline is written with two). `other_labels` (written by export when a
label points at an older version or a split) is informational: import leaves those labels alone.
Fields left out of a file are left as they are in the registry (import does not compare them).

Needs PyYAML (``pip install 'promptforge-client[cli]'``).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptforge_client import template as _template

SUFFIX = ".md"
_CLOSE = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)
_FIELDS = ("name", "type", "template_format", "labels", "other_labels", "tags", "model_config", "variables",
           "messages")


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - the extra is missing
        raise SystemExit("prompts as code needs PyYAML: pip install 'promptforge-client[cli]'") from None
    return yaml


class PromptFileError(ValueError):
    def __init__(self, path: Path | str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)


@dataclass
class PromptFile:
    """A prompt as a file describes it. `None` means "not given" (left as it is in the registry)."""

    name: str
    type: str = "text"
    template: str | None = None
    messages: list[dict[str, Any]] | None = None
    template_format: str | None = None
    labels: list[str] = field(default_factory=list)
    other_labels: dict[str, Any] | None = None
    tags: list[str] | None = None
    model_config: dict[str, Any] | None = None
    variables: list[Any] | None = None
    path: str | None = None

    # -- normalised views (what the registry would store) -------------------------------------------
    def clean_tags(self) -> list[str] | None:
        return None if self.tags is None else sorted({str(t).strip().lower() for t in self.tags})

    def clean_labels(self) -> list[str]:
        return list(dict.fromkeys(str(label).strip().lower() for label in self.labels))

    def content(self) -> dict[str, Any]:
        """The fields import writes (and compares), in a canonical form."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "chat":
            out["messages"] = [dict(m) for m in self.messages or []]
        else:
            out["template"] = self.template
        for key, value in (("template_format", self.template_format), ("tags", self.clean_tags()),
                           ("model_config", self.model_config), ("variables", normalise_variables(self.variables))):
            if value is not None:
                out[key] = value
        return out


def clean_name(name: str) -> str:
    value = unicodedata.normalize("NFC", str(name)).strip()
    return "/".join(segment.strip() for segment in value.split("/"))


def normalise_variables(variables: list[Any] | None) -> list[Any] | None:
    """Names stay names; schema objects get every key (type string, required unless a default is
    given, default null, description "")."""
    if variables is None:
        return None
    if all(isinstance(v, str) for v in variables):
        return list(dict.fromkeys(variables))
    out = []
    for v in variables:
        if isinstance(v, str):
            v = {"name": v}
        default = v.get("default")
        out.append({"name": v["name"], "type": v.get("type", "string"),
                    "required": bool(v.get("required", default is None)), "default": default,
                    "description": str(v.get("description") or "").strip()})
    return out


def compact_schema(schema: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A schema as a file writes it: keys left out when they have their default value."""
    out = []
    for spec in schema:
        item: dict[str, Any] = {"name": spec["name"], "type": spec.get("type", "string")}
        default = spec.get("default")
        if bool(spec.get("required", default is None)) != (default is None):
            item["required"] = bool(spec.get("required"))
        if default is not None:
            item["default"] = default
        if spec.get("description"):
            item["description"] = spec["description"]
        out.append(item)
    return out


def derived_variables(kind: str, template: str | None, messages: Sequence[Mapping[str, Any]] | None,
                      template_format: str) -> list[str] | None:
    """The names the registry derives from the content when none are declared (None: not parseable)."""
    try:
        if kind == "chat":
            texts = [m["content"] for m in messages or [] if isinstance(m.get("content"), str)]
            return list(dict.fromkeys(n for t in texts for n in _template.variables_of(t, template_format)))
        return _template.variables_of(template or "", template_format)
    except Exception:
        return None


# -- reading and writing ----------------------------------------------------------------------------


def path_for(root: Path, name: str) -> Path:
    parts = [p for p in name.split("/") if p]
    return root.joinpath(*parts[:-1], parts[-1] + SUFFIX)


def _str_presenter(dumper: Any, data: str) -> Any:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


def dumps(prompt: PromptFile) -> str:
    yaml = _yaml()
    Dumper: Any = type("Dumper", (yaml.SafeDumper,), {})

    Dumper.add_representer(str, _str_presenter)
    front: dict[str, Any] = {"name": prompt.name, "type": prompt.type}
    if prompt.template_format is not None:
        front["template_format"] = prompt.template_format
    front["labels"] = list(prompt.labels)
    if prompt.other_labels:
        front["other_labels"] = dict(prompt.other_labels)
    if prompt.tags is not None:
        front["tags"] = list(prompt.tags)
    if prompt.model_config is not None:
        front["model_config"] = prompt.model_config
    if prompt.variables is not None:
        front["variables"] = prompt.variables
    if prompt.type == "chat":
        front["messages"] = prompt.messages or []
    text = yaml.dump(front, Dumper=Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)
    body = "" if prompt.type == "chat" else (prompt.template or "") + "\n"
    return f"---\n{text}---\n{body}"


def loads(text: str, path: str = "<string>") -> PromptFile:
    yaml = _yaml()
    if not text.startswith("---"):
        raise PromptFileError(path, "a prompt file starts with a '---' line (YAML front matter)")
    first_break = text.find("\n")
    if first_break < 0 or text[:first_break].strip() != "---":
        raise PromptFileError(path, "a prompt file starts with a '---' line (YAML front matter)")
    close = _CLOSE.search(text, first_break + 1)
    if close is None:
        raise PromptFileError(path, "the front matter is not closed by a '---' line")
    try:
        front = yaml.safe_load(text[first_break + 1:close.start()]) or {}
    except yaml.YAMLError as exc:
        raise PromptFileError(path, f"invalid YAML front matter: {exc}") from None
    if not isinstance(front, dict):
        raise PromptFileError(path, "the front matter must be a mapping")
    unknown = [k for k in front if k not in _FIELDS]
    if unknown:
        raise PromptFileError(path, f"unknown front matter keys: {', '.join(map(str, unknown))}")
    body = text[close.end():]
    if body.startswith("\r\n"):
        body = body[2:]
    elif body.startswith("\n"):
        body = body[1:]
    if body.endswith("\n"):
        body = body[:-1]
    name = front.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PromptFileError(path, "`name` is required")
    kind = front.get("type", "chat" if "messages" in front else "text")
    if kind not in ("text", "chat"):
        raise PromptFileError(path, "`type` is text or chat")
    labels = front.get("labels") or []
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise PromptFileError(path, "`labels` is a list of label names")
    messages = front.get("messages")
    if kind == "chat":
        if not isinstance(messages, list) or not messages:
            raise PromptFileError(path, "a chat prompt lists its `messages` in the front matter")
        if body.strip():
            raise PromptFileError(path, "a chat prompt has no body (its messages are in the front matter)")
        template = None
    else:
        if messages is not None:
            raise PromptFileError(path, "a text prompt has a body, not `messages`")
        template = body
    for key, kind_ in (("tags", list), ("model_config", dict), ("variables", list), ("other_labels", dict)):
        if front.get(key) is not None and not isinstance(front[key], kind_):
            raise PromptFileError(path, f"`{key}` must be a {kind_.__name__}")
    return PromptFile(name=clean_name(name), type=kind, template=template,
                      messages=[dict(m) for m in messages] if messages else None,
                      template_format=front.get("template_format"), labels=labels,
                      other_labels=front.get("other_labels"), tags=front.get("tags"),
                      model_config=front.get("model_config"), variables=front.get("variables"), path=path)


def read_dir(root: Path) -> Iterator[PromptFile]:
    """Every prompt file under `root` (sorted by path)."""
    for path in sorted(root.rglob("*" + SUFFIX)):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts):
            yield loads(path.read_text(encoding="utf-8"), str(path.relative_to(root)))


def from_registry(info: Mapping[str, Any]) -> PromptFile:
    """A prompt's latest version (GET .../prompts/{id}) as a file describes it."""
    latest = info["latest_version"]
    splits = info.get("splits") or {}
    labels = sorted(k for k, v in (info.get("labels") or {}).items() if k != "latest" and v == latest
                    and k not in splits)
    other = {k: v for k, v in sorted((info.get("labels") or {}).items()) if k != "latest" and k not in labels
             and k not in splits}
    other.update({k: {"split": v} for k, v in sorted(splits.items())})
    kind = info.get("type", "text")
    messages = None
    if kind == "chat":
        messages = [{k: v for k, v in m.items() if v is not None} for m in info.get("messages") or []]
    fmt = info.get("template_format", "plain")
    variables: list[Any] | None = None
    if info.get("variable_schema") is not None:
        variables = compact_schema(info["variable_schema"])
    elif list(info.get("variables") or []) != derived_variables(kind, info.get("template"), messages, fmt):
        variables = list(info.get("variables") or [])
    return PromptFile(name=info["name"], type=kind, template=info.get("template") if kind == "text" else None,
                      messages=messages, template_format=fmt, labels=labels, other_labels=other or None,
                      tags=list(info.get("tags") or []), model_config=dict(info.get("model_config") or {}),
                      variables=variables)


def registry_content(info: Mapping[str, Any]) -> dict[str, Any]:
    """The registry's latest version in the canonical form of PromptFile.content()."""
    kind = info.get("type", "text")
    out: dict[str, Any] = {"type": kind}
    if kind == "chat":
        out["messages"] = [{k: v for k, v in m.items() if v is not None} for m in info.get("messages") or []]
    else:
        out["template"] = info.get("template")
    out["template_format"] = info.get("template_format")
    out["tags"] = sorted(info.get("tags") or [])
    out["model_config"] = dict(info.get("model_config") or {})
    schema = info.get("variable_schema")
    out["variables"] = normalise_variables(list(schema)) if schema is not None else list(info.get("variables") or [])
    return out


def differences(wanted: PromptFile, info: Mapping[str, Any]) -> list[str]:
    """The content fields where the file differs from the registry's latest version (fields the file
    leaves out are not compared)."""
    mine, theirs = wanted.content(), registry_content(info)
    changed = []
    for key, value in mine.items():
        if key == "type":
            continue
        other = theirs.get(key)
        if value != other:
            changed.append(key)
    return changed
