"""The registry's routes as request builders and response parsers, shared by Client and AsyncClient."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from promptforge_client._core import Call, org_path
from promptforge_client.models import (
    Change, ChangePage, LabelMoved, PromptCreated, PromptPage, PromptSummary, ReviewRequest, SearchHit, SearchResult,
    VersionCreated,
)


def _content(template: str | None, messages: Sequence[Mapping[str, Any]] | None, template_format: str | None,
             variables: Sequence[Any] | None, config: Mapping[str, Any] | None, tags: Sequence[str] | None,
             message: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if template is not None:
        body["template"] = template
    if messages is not None:
        body["messages"] = [dict(m) for m in messages]
    if template_format is not None:
        body["template_format"] = template_format
    if variables is not None:
        body["variables"] = [dict(v) if isinstance(v, Mapping) else v for v in variables]
    if config is not None:
        body["model_config"] = dict(config)
    if tags is not None:
        body["tags"] = list(tags)
    if message:
        body["message"] = message
    return body


def _idem(key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": key} if key else None


def create_prompt(org: str, name: str, template: str | None, messages: Sequence[Mapping[str, Any]] | None,
                  template_format: str | None, variables: Sequence[Any] | None, config: Mapping[str, Any] | None,
                  tags: Sequence[str] | None, message: str | None, idempotency_key: str | None) -> Call:
    body = {"name": name, **_content(template, messages, template_format, variables, config, tags, message)}
    if messages is not None:
        body["type"] = "chat"
    return Call("POST", org_path(org, "prompts"), None, body, _idem(idempotency_key))


def parse_created(r: httpx.Response) -> PromptCreated:
    b = r.json()
    return PromptCreated(b["id"], b["name"], b["version"], b["position"], r.headers.get("idempotency-replayed") == "true")


def revise_prompt(org: str, prompt_id: str, base_version: int | None, template: str | None,
                  messages: Sequence[Mapping[str, Any]] | None, template_format: str | None,
                  variables: Sequence[Any] | None, config: Mapping[str, Any] | None, tags: Sequence[str] | None,
                  message: str | None, idempotency_key: str | None) -> Call:
    body = _content(template, messages, template_format, variables, config, tags, message)
    if base_version is not None:
        body["base_version"] = base_version
    return Call("POST", org_path(org, "prompts", prompt_id, "versions"), None, body, _idem(idempotency_key))


def parse_version(r: httpx.Response) -> VersionCreated:
    b = r.json()
    return VersionCreated(b["id"], b["version"], b["position"], r.headers.get("idempotency-replayed") == "true")


def move_label(org: str, prompt_id: str, label: str, version: int | None, split: Sequence[Mapping[str, int]] | None,
               expected_version: int | None) -> Call:
    body: dict[str, Any] = {}
    if version is not None:
        body["version"] = version
    if split is not None:
        body["split"] = [dict(e) for e in split]
    if expected_version is not None:
        body["expected_version"] = expected_version
    return Call("PUT", org_path(org, "prompts", prompt_id, "labels", label), None, body)


def parse_label(r: httpx.Response) -> LabelMoved:
    b = r.json()
    return LabelMoved(b["prompt_id"], b["label"], b.get("version"), b.get("split"), b["position"])


def request_review(org: str, prompt_id: str, label: str, version: int | None,
                   split: Sequence[Mapping[str, int]] | None, remove: bool, expected_version: int, reason: str) -> Call:
    body: dict[str, Any] = {"prompt_id": prompt_id, "label": label, "expected_version": expected_version,
                            "reason": reason}
    if version is not None:
        body["version"] = version
    if split is not None:
        body["split"] = [dict(e) for e in split]
    if remove:
        body["remove"] = True
    return Call("POST", org_path(org, "review-requests"), None, body)


def parse_review(r: httpx.Response) -> ReviewRequest:
    b = r.json()
    return ReviewRequest(b["id"], b["status"], b.get("position", 0), b)


def list_reviews(org: str, status: str | None, prompt_id: str | None, min_position: int | None) -> Call:
    params: dict[str, Any] = {}
    if status:
        params["status"] = status
    if prompt_id:
        params["prompt_id"] = prompt_id
    if min_position:
        params["min_position"] = min_position
    return Call("GET", org_path(org, "review-requests"), params or None)


def parse_reviews(r: httpx.Response) -> list[ReviewRequest]:
    return [ReviewRequest(b["id"], b["status"], b.get("position", 0), b) for b in r.json()["items"]]


def list_prompts(org: str, *, tag: str | None, label: str | None, name_prefix: str | None, folder: str | None,
                 archived: bool | None, sort: str | None, limit: int | None, cursor: str | None,
                 min_position: int | None) -> Call:
    params: dict[str, Any] = {}
    for k, v in (("tag", tag), ("label", label), ("name_prefix", name_prefix), ("folder", folder), ("sort", sort),
                 ("limit", limit), ("cursor", cursor)):
        if v is not None:
            params[k] = v
    if archived is not None:
        params["archived"] = "true" if archived else "false"
    else:
        params["archived"] = "all"
    if min_position:
        params["min_position"] = min_position
    return Call("GET", org_path(org, "prompts"), params)


def parse_page(r: httpx.Response) -> PromptPage:
    b = r.json()
    return PromptPage([PromptSummary.from_json(i) for i in b["items"]], b.get("next_cursor"))


def search(org: str, query: str, mode: str, limit: int, tags: Sequence[str] | None, label: str | None,
           include_archived: bool, min_position: int | None) -> Call:
    body: dict[str, Any] = {"query": query, "mode": mode, "limit": limit, "include_archived": include_archived}
    if tags:
        body["tags"] = list(tags)
    if label is not None:
        body["label"] = label
    return Call("POST", org_path(org, "prompts", "search"), {"min_position": min_position} if min_position else None,
                body)


def parse_search(r: httpx.Response) -> SearchResult:
    b = r.json()
    return SearchResult(b["mode"], bool(b.get("degraded")), [
        SearchHit(i["prompt_id"], i["name"], i["score"], i["latest_version"], list(i["tags"]), dict(i["labels"]),
                  i["archived"], dict(i.get("ranks") or {})) for i in b["items"]], b.get("notice"))


def get_prompt_info(org: str, prompt_id: str, min_position: int | None) -> Call:
    return Call("GET", org_path(org, "prompts", prompt_id), {"min_position": min_position} if min_position else None)


def get_org(org: str) -> Call:
    return Call("GET", org_path(org))


def changes(org: str, after: int, limit: int, wait: float, min_position: int | None = None) -> Call:
    params: dict[str, Any] = {"after": after, "limit": limit}
    if wait:
        params["wait"] = wait
    if min_position:
        params["min_position"] = min_position
    return Call("GET", org_path(org, "changes"), params)


def parse_changes(r: httpx.Response) -> ChangePage:
    b = r.json()
    return ChangePage([Change.from_json(i) for i in b["items"]], b["next"])
