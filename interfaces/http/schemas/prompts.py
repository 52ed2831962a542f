"""Prompts, versions, labels, render, diff, audit."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StringConstraints, model_validator
from typing_extensions import Annotated

from domain.values import MAX_LABEL, MAX_MESSAGE, MAX_NAME, MAX_TAG, MAX_TAGS, MAX_VARIABLES
from interfaces.http.schemas.common import Instant, RequestModel, ResponseModel
from interfaces.http.schemas.content import (
    FORMAT_DOC, VARIABLES_DOC, ChatMessage, Content, Dependency, Format, MessageOut, Placeholder, Variable,
    VariableOut, Variables,
)

# Bounds come from the domain so HTTP and the domain never disagree; the domain re-checks anyway.
Tag = Annotated[str, StringConstraints(max_length=MAX_TAG)]
VERSION = Field(ge=1, le=2**31 - 1)

_PROMPT_EXAMPLE = {
    "name": "support/replies/refund", "template": "{{> support/tone}}\nAnswer for {{product}}: {{question}}",
    "variables": [{"name": "product", "type": "string"}, {"name": "question", "type": "string"}],
    "model_config": {"model": "gpt-4o-mini", "temperature": 0.2}, "tags": ["support", "email"], "message": "first draft",
}
_CHAT_EXAMPLE = {
    "name": "support/chat", "type": "chat", "messages": [
        {"role": "system", "content": "You support {{product}}.{{#vip}} Be extra careful.{{/vip}}"},
        {"type": "placeholder", "name": "history"}, {"role": "user", "content": "{{question}}"}],
    "variables": [{"name": "product", "type": "string"}, {"name": "vip", "type": "boolean", "required": False,
                                                         "default": False}, {"name": "question"}],
}
class PromptCreate(RequestModel):
    """A text prompt (`template`, as before) or a chat prompt (`type: "chat"`, `messages`). The type is
    fixed for the prompt's life. Names may be folder paths (`support/billing/refund-reply`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PROMPT_EXAMPLE, _CHAT_EXAMPLE]})
    name: str = Field(max_length=MAX_NAME, description="Unique per organisation (case-insensitive); `/` separates folders.")
    type: Literal["text", "chat"] = "text"
    template: Content | None = Field(None, description="The template of a text prompt.")
    messages: list[ChatMessage | Placeholder] | None = Field(None, max_length=200, description=(
        "The messages of a chat prompt, in order: `{role, content}` or `{type: \"placeholder\", name}`."))
    template_format: Format | None = Field(None, description=FORMAT_DOC)
    variables: Variables | None = Field(None, max_length=MAX_VARIABLES, description=VARIABLES_DOC)
    model_settings: dict[str, Any] | None = Field(None, alias="model_config", description="Free-form JSON (16 KiB).")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    message: str = Field("", max_length=MAX_MESSAGE, description="Commit message of version 1.")


class PromptRevise(RequestModel):
    """Adds version n+1. Fields left out are inherited from the latest version."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"base_version": 1, "template": "You are a friendly support agent for {{product}}. Answer: {{question}}",
         "message": "friendlier tone"}]})
    base_version: StrictInt | None = Field(None, ge=1, le=2**31 - 1, description=(
        "The version this edit starts from; a stale one is 409 PROMPT_VERSION_CONFLICT. "
        "May instead be given as `If-Match: \"<prompt_id>:<version>\"` (then a mismatch is 412)."))
    template: Content | None = Field(None, description="A text prompt's new template.")
    messages: list[ChatMessage | Placeholder] | None = Field(None, max_length=200, description="A chat prompt's new messages.")
    template_format: Format | None = Field(None, description=FORMAT_DOC)
    variables: Variables | None = Field(None, max_length=MAX_VARIABLES, description=VARIABLES_DOC)
    model_settings: dict[str, Any] | None = Field(None, alias="model_config")
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS)
    message: str = Field("", max_length=MAX_MESSAGE)


class PromptCreated(ResponseModel):
    id: str
    name: str
    version: int
    position: int


class VersionCreated(ResponseModel):
    id: str
    version: int
    position: int


class VersionOut(ResponseModel):
    version: int
    type: str = "text"
    template: str | None = Field(description="A text prompt's template (null for chat prompts).")
    messages: list[MessageOut] | None = None
    template_format: str
    variables: list[str]
    variable_schema: list[VariableOut] | None = None
    model_settings: dict[str, Any] = Field(alias="model_config", serialization_alias="model_config")
    tags: list[str]
    message: str
    author: str
    created_at: Instant


class VersionList(ResponseModel):
    items: list[VersionOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at the end.")


class PromptSummary(ResponseModel):
    id: str
    name: str
    latest_version: int
    tags: list[str]
    labels: dict[str, int]
    splits: dict[str, list[dict[str, int]]] = Field(default_factory=dict)
    archived: bool
    created_at: Instant
    updated_at: Instant


class PromptList(ResponseModel):
    items: list[PromptSummary]
    next_cursor: str | None


class PromptOut(ResponseModel):
    id: str
    name: str
    folder: str = Field(description="The folder path of the name ('' at the top level).")
    type: str = "text"
    latest_version: int
    template: str | None = Field(description="The latest template (null for chat prompts).")
    messages: list[MessageOut] | None = None
    template_format: str
    variables: list[str]
    variable_schema: list[VariableOut] | None = None
    model_settings: dict[str, Any] = Field(alias="model_config", serialization_alias="model_config")
    tags: list[str]
    labels: dict[str, int] = Field(description="Label -> version, including the automatic `latest`.")
    splits: dict[str, list[dict[str, int]]] = Field(default_factory=dict, description=(
        "Labels pointing at a traffic split: label -> [{version, weight}] (`labels` shows the primary)."))
    archived: bool
    created_at: Instant
    updated_at: Instant
    as_of: Instant | None = Field(None, description="Set when answered by time travel from the event stream.")


class FetchOut(ResponseModel):
    """The application fetch path: one version, its includes resolved (unless `resolve=false`)."""

    prompt_id: str
    name: str
    version: int
    label: str | None = Field(description="The label that was resolved (null when fetched by version).")
    type: str = "text"
    template: str | None = Field(description="The (composed) template; null for chat prompts.")
    messages: list[MessageOut] | None = None
    template_format: str
    variables: list[str] = Field(description="Every variable the composed content uses.")
    variable_schema: list[VariableOut] | None = None
    resolved: bool = Field(True, description="Whether includes were resolved (`resolve=false` returns the raw content).")
    split: list[dict[str, int]] | None = Field(None, description=(
        "When the label points at a traffic split: its entries; `version` is the one picked for this caller."))
    dependencies: list[Dependency] = Field(default_factory=list, description=(
        "Exactly the prompts (and versions, and labels) the composed content used: log it with your call."))
    model_settings: dict[str, Any] = Field(alias="model_config", serialization_alias="model_config")
    tags: list[str]
    as_of: Instant | None = None


class SplitEntry(RequestModel):
    version: StrictInt = VERSION
    weight: StrictInt = Field(ge=1, le=100)


SPLIT_DOC = ("A traffic split instead of one version: weights sum to 100. The by-name fetch picks a version "
             "per `split_key` (stable) or at random; the label's primary (heaviest) version is what `labels` "
             "shows and what `expected_version` compares.")


class LabelMove(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"version": 2, "expected_version": 1},
        {"split": [{"version": 7, "weight": 90}, {"version": 8, "weight": 10}], "expected_version": 7}]})
    version: StrictInt | None = Field(None, ge=1, le=2**31 - 1)
    split: list[SplitEntry] | None = Field(None, max_length=10, description=SPLIT_DOC)
    expected_version: StrictInt | None = Field(None, ge=0, le=2**31 - 1, description=(
        "Compare-and-set: the version the label must point at now (0 = not set); mismatch is 409 LABEL_CONFLICT."))

    @model_validator(mode="after")
    def _version_or_split(self) -> "LabelMove":
        if (self.version is None) == (self.split is None):
            raise ValueError("give version or split")
        return self


class LabelOut(ResponseModel):
    prompt_id: str
    label: str
    version: int | None
    split: list[dict[str, int]] | None = None
    position: int


class LabelMoveOut(ResponseModel):
    label: str
    from_version: int | None
    to_version: int | None
    split: list[dict[str, int]] | None = None
    actor: str
    moved_at: Instant
    position: int
    review_id: str | None = Field(None, description="The review request the move was approved in (null: direct).")
    requested_by: str | None = None
    approved_by: list[str] = Field(default_factory=list)


class LabelHistory(ResponseModel):
    items: list[LabelMoveOut]


class RenderRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"variables": {"product": "PromptForge", "question": "How do I roll back?"}, "label": "production"},
        {"variables": {"question": "Where is my order?", "items": [{"sku": "A1"}]},
         "placeholders": {"history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}}]})
    variables: dict[Annotated[str, StringConstraints(max_length=64)], Any] = Field(
        default_factory=dict, max_length=64, description="Values by name: JSON strings, numbers, booleans, lists, objects.")
    placeholders: dict[Variable, list[ChatMessage]] = Field(default_factory=dict, max_length=64, description=(
        "Chat prompts: the messages each placeholder is replaced with."))
    strict: StrictBool = Field(True, description="Refuse variables the prompt does not use (422); false ignores them.")
    label: str | None = Field(None, max_length=MAX_LABEL)
    version: StrictInt | None = Field(None, ge=1, le=2**31 - 1)

    @model_validator(mode="after")
    def _label_or_version(self) -> "RenderRequest":
        if self.label is not None and self.version is not None:
            raise ValueError("give label or version, not both (default: latest)")
        return self


class RenderOut(ResponseModel):
    prompt_id: str
    version: int
    type: str = "text"
    text: str | None = Field(description="The rendered text (text prompts).")
    messages: list[MessageOut] | None = Field(None, description="The rendered messages (chat prompts).")
    dependencies: list[Dependency] = Field(default_factory=list)


class RenameRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "support/billing/refund-reply"}]})
    name: str = Field(max_length=MAX_NAME, description="The new name; may move the prompt to another folder.")


class RenameOut(ResponseModel):
    id: str
    name: str
    position: int


class DependentOut(ResponseModel):
    prompt_id: str
    name: str
    archived: bool
    versions: list[int] = Field(description="The dependent's versions that include this prompt and are served "
                                            "(its latest, or one a label points at).")
    labels: list[str] = Field(description="The dependent's labels (with `latest`) whose version includes it.")
    includes: list[dict[str, Any]] = Field(description="How it is included: `{label, version}` selectors.")


class DependentList(ResponseModel):
    prompt_id: str
    items: list[DependentOut]


class FolderOut(ResponseModel):
    name: str
    path: str
    prompts: int = Field(description="Prompts in this folder and all its sub-folders (not archived).")


class FolderList(ResponseModel):
    parent: str
    prompts: int = Field(description="Prompts directly in `parent` (not archived).")
    folders: list[FolderOut]


class FieldChange(ResponseModel):
    before: Any = Field(alias="from", serialization_alias="from")
    after: Any = Field(alias="to", serialization_alias="to")


class MessageDiff(ResponseModel):
    index: int
    before: MessageOut | None = Field(description="The message at this position in `from` (null: added).")
    after: MessageOut | None = Field(description="The message at this position in `to` (null: removed).")
    content_diff: str


class DiffOut(ResponseModel):
    prompt_id: str
    from_version: int
    to_version: int
    template_diff: str = Field(description="Unified diff of the two templates (text prompts; empty when equal).")
    messages_diff: list[MessageDiff] = Field(default_factory=list, description=(
        "Chat prompts: message by message, each changed position with a unified diff of its content."))
    changes: dict[str, FieldChange] = Field(description=(
        "Other fields that differ: variables, variable_schema, template_format, model_config, tags."))


class ArchiveOut(ResponseModel):
    id: str
    archived: bool
    position: int
