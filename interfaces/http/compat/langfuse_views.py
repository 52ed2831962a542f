"""Langfuse's prompt shapes to and from PromptForge's (adr/0015). Translation only, no decisions.

- A Langfuse `Prompt` (`TextPrompt` / `ChatPrompt` of its public API) is one version of a prompt:
  `{type, name, version, prompt, config, labels, tags, commitMessage, resolutionGraph}`. `config` is
  the version's `model_config`; `labels` the labels pointing at that version, `latest` included when
  it is the latest; `tags` the prompt's (its latest version's: Langfuse keeps tags per prompt).
- Chat messages are `{role, content}` and placeholders `{type: "placeholder", name}` both ways; a
  Langfuse message's own `type` ("chatmessage") is dropped on the way in.
- Template format: Langfuse's `{{var}}` is substitution only, never escaped. A text whose every
  `{{...}}` is a plain variable is stored as `mustache` (identical there); any other brace text
  (`{{#each}}`, `{{a.b}}`, `{{> x}}`, `{{ two words }}`, `{{{x}}}`) as `plain`, where it stays literal, so no
  Langfuse text ever gains a meaning it did not have (a section, an include).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from interfaces.http.compat.langfuse_errors import LangfuseError

#: A `{{...}}` Langfuse and PromptForge's mustache both read as one plain variable.
_VARIABLE = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]{0,63}\s*")
#: The `type` Langfuse gives an ordinary chat message (not a placeholder).
_MESSAGE_TYPES = frozenset({"chatmessage", "message"})


def template_format(texts: Iterable[str]) -> str:
    """`mustache` when every tag of every text is a plain variable, else `plain`. Tags are found as
    Langfuse's SDK finds them: a `{{`, then the first `}}` after it."""
    for text in texts:
        at = 0
        while (start := text.find("{{", at)) != -1:
            end = text.find("}}", start + 2)
            if end == -1:
                break  # literal in both
            if not _VARIABLE.fullmatch(text[start + 2:end]):
                return "plain"
            at = end + 2
    return "mustache"


@dataclass(frozen=True)
class NewVersion:
    """A `POST /api/public/v2/prompts` body, as command arguments."""

    name: str
    type: str
    template: str | None
    messages: list[dict[str, Any]] | None
    template_format: str
    model_config: dict[str, Any]
    labels: list[str]
    tags: list[str] | None
    message: str


def bad(message: str) -> LangfuseError:
    return LangfuseError(400, message)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(f"{what} must be a list of strings")
    return list(value)


def new_version(body: Any) -> NewVersion:
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    name, type_, prompt = body.get("name"), body.get("type") or "text", body.get("prompt")
    if not isinstance(name, str):
        raise bad("name must be a string")
    if type_ not in ("text", "chat"):
        raise bad('type must be "text" or "chat"')
    template = messages = None
    if type_ == "text":
        if not isinstance(prompt, str):
            raise bad("prompt must be a string for a text prompt")
        template, texts = prompt, [prompt]
    else:
        if not isinstance(prompt, list) or not all(isinstance(m, dict) for m in prompt):
            raise bad("prompt must be a list of chat messages for a chat prompt")
        messages = [{k: v for k, v in m.items() if not (k == "type" and v in _MESSAGE_TYPES)} for m in prompt]
        texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
    config = body.get("config")
    if config is not None and not isinstance(config, dict):
        raise bad("config must be a JSON object (PromptForge keeps it as the version's model_config)")
    commit = body.get("commitMessage")
    if commit is not None and not isinstance(commit, str):
        raise bad("commitMessage must be a string")
    labels = _strings(body["labels"], "labels") if body.get("labels") is not None else []
    tags = _strings(body["tags"], "tags") if body.get("tags") is not None else None
    return NewVersion(name, type_, template, messages, template_format(texts), config or {}, labels, tags,
                      commit or "")


def new_labels(body: Any) -> list[str]:
    if not isinstance(body, dict) or "newLabels" not in body:
        raise bad("the body must be a JSON object with newLabels")
    return _strings(body["newLabels"], "newLabels")


# -- answers --------------------------------------------------------------------------------------

def labels_of(labels: dict[str, int], version: int, latest: int) -> list[str]:
    """The labels pointing at `version` (a split's primary version), `latest` last."""
    return sorted(label for label, v in labels.items() if v == version) + (["latest"] if version == latest else [])


def messages_out(messages: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{"type": "placeholder", "name": m["name"]} if m.get("type") == "placeholder"
            else {"role": m["role"], "content": m["content"]} for m in messages or ()]


def prompt_out(*, name: str, version: int, content: dict[str, Any], labels: list[str], tags: list[str],
               graph: dict[str, Any] | None = None) -> dict[str, Any]:
    """`content`: a version (aggregate entry or read-model row) or its composition's fields."""
    chat = content["type"] == "chat"
    return {"type": content["type"], "name": name, "version": version,
            "prompt": messages_out(content["messages"]) if chat else content["template"],
            "config": content["model_config"], "labels": labels, "tags": list(tags),
            "commitMessage": content.get("message") or None, "resolutionGraph": graph}


def from_aggregate(prompt, version: int) -> dict[str, Any]:
    """A version as the aggregate holds it now (what a write answers: raw, as Langfuse's does)."""
    return prompt_out(name=prompt.name, version=version, content=prompt.get_version(version),
                      labels=labels_of(prompt.labels, version, prompt.latest_version), tags=prompt.versions[-1]["tags"])


def resolution_graph(prompt_id: str, name: str, version: int, dependencies: list[dict[str, Any]]) -> dict | None:
    """Langfuse's `{root, dependencies: {parent id: [{id, name, version}]}}`; PromptForge records the
    composition's dependencies as one list, so every dependency is listed under the root."""
    if not dependencies:
        return None
    return {"root": {"id": prompt_id, "name": name, "version": version},
            "dependencies": {prompt_id: [{"id": d["prompt_id"], "name": d["name"], "version": d["version"]}
                                         for d in dependencies]}}


def instant(value: datetime) -> str:
    """RFC 3339 in UTC (SQLite read models hand back naive UTC datetimes)."""
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.isoformat().replace("+00:00", "Z")


def meta_out(row: dict[str, Any], versions: list[int], labels: list[str], config: Any) -> dict[str, Any]:
    """A `PromptMeta` of Langfuse's prompt list."""
    return {"name": row["name"], "type": row["type"], "versions": versions, "labels": labels, "tags": list(row["tags"]),
            "lastUpdatedAt": instant(row["updated_at"]), "lastConfig": config}
