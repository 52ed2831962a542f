"""What the client returns: a fetched `Prompt` (renders locally) and the write side's small results."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from promptforge_client import template as _template

__all__ = [
    "Prompt", "Dependency", "PromptCreated", "VersionCreated", "LabelMoved", "ReviewRequest", "PromptSummary",
    "PromptPage", "SearchHit", "SearchResult", "Change", "ChangePage", "Fallback",
]

#: What `fallback=` accepts: a text template, a list of chat messages, a dict
#: ``{"template" | "messages", "template_format"?, "variables"?, "config"?}``, or a Prompt.
Fallback: TypeAlias = "str | Sequence[Mapping[str, Any]] | Mapping[str, Any] | Prompt"


@dataclass(frozen=True, slots=True)
class Dependency:
    """One prompt the composed content included: log it with your LLM call."""

    name: str
    prompt_id: str
    version: int
    label: str | None


@dataclass(frozen=True, slots=True)
class Prompt:
    """One version of a prompt as the registry serves it (includes resolved), or a caller's fallback.

    Treat it as read-only: a cached Prompt is shared by every caller that gets it."""

    type: Literal["text", "chat"]
    name: str
    #: The version served (None for a fallback).
    version: int | None
    #: The label it was fetched through (None when fetched by version).
    label: str | None
    #: Text prompts: the composed template (None for chat prompts).
    template: str | None
    #: Chat prompts: ``{"role", "content"}`` and ``{"type": "placeholder", "name"}`` entries.
    messages: tuple[dict[str, Any], ...] | None
    template_format: str
    #: The version's model_config (free-form JSON).
    config: dict[str, Any]
    #: Every variable the composed content takes.
    variables: tuple[str, ...]
    #: ``[{name, type, required, default, description}]`` when declared, else None.
    variable_schema: tuple[dict[str, Any], ...] | None
    dependencies: tuple[Dependency, ...] = ()
    prompt_id: str | None = None
    tags: tuple[str, ...] = ()
    #: When the label points at a traffic split: its ``[{version, weight}]`` entries.
    split: tuple[dict[str, int], ...] | None = None
    #: The log position this copy is known to be current at: the change-feed position it was fetched
    #: after in watch mode, or the client's own last write (read-your-writes); None when unknown.
    position: int | None = None
    #: True when this is the caller's `fallback`, not the registry's content.
    is_fallback: bool = False
    etag: str | None = field(default=None, repr=False)

    @property
    def model_config(self) -> dict[str, Any]:
        """Alias of `config` (the registry's field name)."""
        return self.config

    def render(self, values: Mapping[str, Any] | None = None, /, *, placeholders: Mapping[str, Any] | None = None,
               strict: bool = True, **variables: Any) -> Any:
        """Render locally, exactly as the server's POST .../render does: the values are checked against
        the prompt's variables / schema (RenderError RENDER_VARIABLES_MISMATCH lists every problem),
        then the text (a str) or the messages (a list of ``{"role", "content"}``, each placeholder
        replaced by the messages given in `placeholders`) are rendered.

        Values: keyword arguments, or a mapping as the positional argument (for names such as
        ``placeholders`` or ``strict``); both may be combined. `strict=False` ignores unknown values."""
        given: Mapping[str, Any] | None
        if values is None:
            given = variables
        elif variables:
            given = {**values, **variables}
        else:
            given = values
        return _template.render_prompt(type=self.type, template=self.template, messages=self.messages,
                                       template_format=self.template_format, variables=self.variables,
                                       variable_schema=self.variable_schema, values=given,
                                       placeholders=placeholders, strict=strict)

    @classmethod
    def from_fetch(cls, body: Mapping[str, Any], etag: str | None = None, position: int | None = None) -> "Prompt":
        """From the JSON of GET .../prompts/by-name/{name}."""
        messages = body.get("messages")
        schema = body.get("variable_schema")
        split = body.get("split")
        return cls(
            type="chat" if body.get("type") == "chat" else "text", name=body["name"], version=body["version"], label=body.get("label"),
            template=body.get("template"),
            messages=tuple({k: v for k, v in m.items() if v is not None} for m in messages) if messages is not None
            else None,
            template_format=body.get("template_format", "plain"), config=dict(body.get("model_config") or {}),
            variables=tuple(body.get("variables") or ()),
            variable_schema=tuple(dict(v) for v in schema) if schema is not None else None,
            dependencies=tuple(Dependency(d["name"], d["prompt_id"], d["version"], d.get("label"))
                               for d in body.get("dependencies") or ()),
            prompt_id=body.get("prompt_id"), tags=tuple(body.get("tags") or ()),
            split=tuple(dict(e) for e in split) if split else None, position=position, etag=etag)

    @classmethod
    def fallback(cls, value: Any, *, name: str, label: str | None = None) -> "Prompt":
        """A caller's fallback as a Prompt (`is_fallback=True`); its variables are derived from the
        content unless given (``variables``: names or schema objects)."""
        if isinstance(value, Prompt):
            return value if value.is_fallback else _replace_fallback(value)
        if isinstance(value, str):
            value = {"template": value}
        elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            value = {"messages": list(value)}
        if not isinstance(value, Mapping):
            raise TypeError("fallback must be a template str, a list of chat messages, a dict or a Prompt")
        fmt = value.get("template_format", "mustache")
        kind: Literal["text", "chat"]
        if value.get("messages") is not None:
            messages = tuple(dict(m) for m in value["messages"])
            texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
            kind, template = "chat", None
        else:
            messages, kind, template = None, "text", value.get("template")
            texts = [template] if isinstance(template, str) else []
        names, schema = _template.clean_variables(value.get("variables"), texts, fmt)
        return cls(type=kind, name=name, version=None, label=label, template=template, messages=messages,
                   template_format=fmt, config=dict(value.get("config") or value.get("model_config") or {}),
                   variables=tuple(names), variable_schema=tuple(schema) if schema is not None else None,
                   tags=tuple(value.get("tags") or ()), is_fallback=True)


def _replace_fallback(prompt: Prompt) -> Prompt:
    from dataclasses import replace

    return replace(prompt, is_fallback=True)


@dataclass(frozen=True, slots=True)
class PromptCreated:
    id: str
    name: str
    version: int
    position: int
    #: True when the server answered a retried Idempotency-Key (nothing new was written).
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class VersionCreated:
    id: str
    version: int
    position: int
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class LabelMoved:
    prompt_id: str
    label: str
    version: int | None
    split: list[dict[str, int]] | None
    position: int


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    id: str
    status: str
    position: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class PromptSummary:
    id: str
    name: str
    latest_version: int
    tags: list[str]
    labels: dict[str, int]
    splits: dict[str, list[dict[str, int]]]
    archived: bool
    created_at: str
    updated_at: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "PromptSummary":
        return cls(id=body["id"], name=body["name"], latest_version=body["latest_version"], tags=list(body["tags"]),
                   labels=dict(body["labels"]), splits=dict(body.get("splits") or {}), archived=body["archived"],
                   created_at=body["created_at"], updated_at=body["updated_at"])


@dataclass(frozen=True, slots=True)
class PromptPage:
    items: list[PromptSummary]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SearchHit:
    prompt_id: str
    name: str
    score: float
    latest_version: int
    tags: list[str]
    labels: dict[str, int]
    archived: bool
    ranks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchResult:
    mode: str
    degraded: bool
    items: list[SearchHit]
    notice: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One change of the organisation's feed (GET .../changes, or the SSE stream)."""

    position: int
    type: str
    prompt_id: str | None
    name: str | None
    version: int | None
    label: str | None
    actor: str
    at: str
    audience: str
    details: dict[str, Any]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "Change":
        return cls(position=body["position"], type=body["type"], prompt_id=body.get("prompt_id"),
                   name=body.get("name"), version=body.get("version"), label=body.get("label"),
                   actor=body.get("actor", ""), at=body.get("at", ""), audience=body.get("audience", ""),
                   details=dict(body.get("details") or {}))


@dataclass(frozen=True, slots=True)
class ChangePage:
    items: list[Change]
    next: int
