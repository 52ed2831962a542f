"""Prompts, versions, labels, render, diff, audit."""
from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, StrictInt, StringConstraints, model_validator
from typing_extensions import Annotated

from domain.values import MAX_LABEL, MAX_MESSAGE, MAX_NAME, MAX_TAG, MAX_TAGS, MAX_TEMPLATE, MAX_VARIABLES
from interfaces.http.schemas.common import Instant, RequestModel, ResponseModel

# Bounds come from the domain so HTTP and the domain never disagree; the domain re-checks anyway.
Tag = Annotated[str, StringConstraints(max_length=MAX_TAG)]
Variable = Annotated[str, StringConstraints(max_length=64)]
Scalar = str | int | float | bool | None
VERSION = Field(ge=1, le=2**31 - 1)

_PROMPT_EXAMPLE = {
    "name": "support-reply", "template": "You are a support agent for {{product}}. Answer: {{question}}",
    "variables": ["product", "question"], "model_config": {"model": "gpt-4o-mini", "temperature": 0.2},
    "tags": ["support", "email"], "message": "first draft",
}


class PromptCreate(RequestModel):
    """`variables` default to the template's `{{placeholders}}`; when given they must match them."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PROMPT_EXAMPLE]})
    name: str = Field(max_length=MAX_NAME, description="Unique per organisation (case-insensitive).")
    template: str = Field(max_length=MAX_TEMPLATE)
    variables: list[Variable] | None = Field(None, max_length=MAX_VARIABLES)
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
    template: str | None = Field(None, max_length=MAX_TEMPLATE)
    variables: list[Variable] | None = Field(None, max_length=MAX_VARIABLES)
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
    template: str
    variables: list[str]
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
    archived: bool
    created_at: Instant
    updated_at: Instant


class PromptList(ResponseModel):
    items: list[PromptSummary]
    next_cursor: str | None


class PromptOut(ResponseModel):
    id: str
    name: str
    latest_version: int
    template: str
    variables: list[str]
    model_settings: dict[str, Any] = Field(alias="model_config", serialization_alias="model_config")
    tags: list[str]
    labels: dict[str, int] = Field(description="Label -> version, including the automatic `latest`.")
    archived: bool
    created_at: Instant
    updated_at: Instant
    as_of: Instant | None = Field(None, description="Set when answered by time travel from the event stream.")


class FetchOut(ResponseModel):
    """The application fetch path: one resolved version. ETag: `"<prompt_id>:<version>"`."""

    prompt_id: str
    name: str
    version: int
    label: str | None = Field(description="The label that was resolved (null when fetched by version).")
    template: str
    variables: list[str]
    model_settings: dict[str, Any] = Field(alias="model_config", serialization_alias="model_config")
    tags: list[str]
    as_of: Instant | None = None


class LabelMove(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 2, "expected_version": 1}]})
    version: StrictInt = VERSION
    expected_version: StrictInt | None = Field(None, ge=0, le=2**31 - 1, description=(
        "Compare-and-set: the version the label must point at now (0 = not set); mismatch is 409 LABEL_CONFLICT."))


class LabelOut(ResponseModel):
    prompt_id: str
    label: str
    version: int | None
    position: int


class LabelMoveOut(ResponseModel):
    label: str
    from_version: int | None
    to_version: int | None
    actor: str
    moved_at: Instant
    position: int


class LabelHistory(ResponseModel):
    items: list[LabelMoveOut]


class RenderRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"variables": {"product": "PromptForge", "question": "How do I roll back?"}, "label": "production"}]})
    variables: dict[Annotated[str, StringConstraints(max_length=64)], Scalar] = Field(
        default_factory=dict, max_length=64)
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
    text: str


class FieldChange(ResponseModel):
    before: Any = Field(alias="from", serialization_alias="from")
    after: Any = Field(alias="to", serialization_alias="to")


class DiffOut(ResponseModel):
    prompt_id: str
    from_version: int
    to_version: int
    template_diff: str = Field(description="Unified diff of the two templates (empty when equal).")
    changes: dict[str, FieldChange] = Field(description="Other fields that differ: variables, model_config, tags.")


class ArchiveOut(ResponseModel):
    id: str
    archived: bool
    position: int


class AuditEventOut(ResponseModel):
    position: int
    occurred_at: Instant
    actor: str
    action: str
    target_type: str
    target_id: str
    request_id: str
    details: dict[str, Any]


class AuditPage(ResponseModel):
    items: list[AuditEventOut]
    next_cursor: str | None
