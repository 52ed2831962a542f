"""Request bodies to command arguments, and response bodies from read-model rows, aggregates and
compositions (no decisions here)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.composition import Resolution
from domain.prompt import Prompt
from domain.values import folder_of
from interfaces.http.schemas.content import Dependency, MessageOut, VariableOut
from interfaces.http.schemas.prompts import FetchOut, PromptOut, PromptSummary, RenderOut, VersionOut


def messages_arg(body) -> list[dict[str, Any]] | None:
    return [m.model_dump() for m in body.messages] if body.messages is not None else None


def variables_arg(body) -> list | None:
    """Variable names, or a schema (only the keys the caller set: the domain fills the defaults)."""
    if body.variables is None:
        return None
    return [v if isinstance(v, str) else v.model_dump(exclude_unset=True) for v in body.variables]


def messages_out(messages: list[dict[str, Any]] | None) -> list[MessageOut] | None:
    return [MessageOut(**m) for m in messages] if messages is not None else None


def schema_out(schema: list[dict[str, Any]] | None) -> list[VariableOut] | None:
    return [VariableOut(**v) for v in schema] if schema is not None else None


def content(version: dict[str, Any]) -> dict[str, Any]:
    """The content fields of a version (row or aggregate entry), as every prompt read shows them."""
    chat = version.get("type", "text") == "chat"
    return {"type": version.get("type", "text"), "template": None if chat else version["template"],
            "messages": messages_out(version.get("messages")), "template_format": version.get("template_format", "plain"),
            "variables": list(version["variables"]), "variable_schema": schema_out(version.get("variable_schema"))}


def dependencies_out(resolution: Resolution) -> list[Dependency]:
    return [Dependency(**d) for d in resolution.dependencies]


def prompt_row(row: dict[str, Any]) -> PromptOut:
    return PromptOut(
        id=row["prompt_id"], name=row["name"], folder=row["folder"], latest_version=row["latest_version"],
        **content(row), model_settings=row["model_config"], tags=row["tags"],
        labels={**row["labels"], "latest": row["latest_version"]}, splits=row["splits"], archived=row["archived"],
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


def prompt_aggregate(prompt: Prompt, as_of: datetime | None = None) -> PromptOut:
    latest = prompt.versions[-1]
    return PromptOut(
        id=str(prompt.id), name=prompt.name, folder=folder_of(prompt.name), latest_version=prompt.latest_version,
        **content(latest), model_settings=dict(latest["model_config"]), tags=list(latest["tags"]),
        labels={**prompt.labels, "latest": prompt.latest_version}, splits=dict(getattr(prompt, "splits", {})),
        archived=prompt.archived, created_at=prompt.created_on, updated_at=prompt.modified_on, as_of=as_of,
    )


def summary_row(row: dict[str, Any]) -> PromptSummary:
    return PromptSummary(
        id=row["prompt_id"], name=row["name"], latest_version=row["latest_version"], tags=row["tags"],
        labels={**row["labels"], "latest": row["latest_version"]}, splits=row["splits"], archived=row["archived"],
        created_at=row["created_at"], updated_at=row["updated_at"])


def version_row(row: dict[str, Any]) -> VersionOut:
    return VersionOut(version=row["version"], **content(row), model_settings=row["model_config"], tags=row["tags"],
                      message=row["message"], author=row["author"], created_at=row["created_at"])


def fetched(prompt_id: str, name: str, version: dict[str, Any], label: str | None, resolution: Resolution | None,
            as_of: datetime | None = None) -> FetchOut:
    """A fetched version: composed (resolution given) or raw (`resolve=false`)."""
    body = content(version)
    if resolution is not None:
        body.update(template=resolution.template if body["type"] == "text" else None,
                    messages=messages_out(resolution.messages), variables=resolution.variables,
                    variable_schema=schema_out(resolution.variable_schema))
    return FetchOut(prompt_id=prompt_id, name=name, version=version.get("resolved", version.get("version")),
                    label=label, **body, model_settings=version["model_config"], tags=version["tags"],
                    resolved=resolution is not None,
                    dependencies=dependencies_out(resolution) if resolution is not None else [], as_of=as_of)


def rendered(prompt_id: str, version: dict[str, Any], resolution: Resolution, output: Any) -> RenderOut:
    chat = version["type"] == "chat"
    return RenderOut(prompt_id=prompt_id, version=version["version"], type=version["type"],
                     text=None if chat else output, messages=messages_out(output) if chat else None,
                     dependencies=dependencies_out(resolution))
