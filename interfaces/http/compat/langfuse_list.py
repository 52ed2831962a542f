"""`GET /api/public/v2/prompts`: Langfuse's prompt list (`PromptMetaListResponse`) from the catalogue.

Langfuse filters prompt *versions* and then groups them by prompt: a prompt is listed when one of
its versions matches, and `versions`, `labels` and `lastConfig` are those of its matching versions
(`label=production`: the production version only). Here:

- `name` (exact, case-insensitive like every PromptForge name lookup), `tag`, `label` filter as the
  catalogue does (`latest`: every prompt, its latest version); `version` keeps that number;
  `fromUpdatedAt` (inclusive) / `toUpdatedAt` (exclusive) keep the versions created in that window.
- Archived prompts are not listed (they are still fetched by name, as on `/v1`).
- Ordered by name; `page` (from 1) and `limit` (1..100, default 10) as Langfuse's, with
  `meta: {page, limit, totalItems, totalPages}`. `lastUpdatedAt` is the prompt's last change.

The catalogue pages by keyset cursor and does not count, so this walks the organisation's matching
prompts to count and slice them (and reads each one's versions when a time window is given): fine
for a listing, not a hot path (adr/0015 names the read-model query that would page it directly).
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from domain.errors import Invalid
from domain.values import clean_prompt_name
from interfaces.http.compat.langfuse_views import meta_out
from interfaces.http.kit import instant_or_none
from projections.paging import MAX_PAGE


def prompts_page(container, org: str, *, name: str | None, label: str | None, tag: str | None,
                 version: int | None, page: int, limit: int, from_updated_at: str | None,
                 to_updated_at: str | None) -> dict[str, Any]:
    since = instant_or_none(from_updated_at, "fromUpdatedAt")
    until = instant_or_none(to_updated_at, "toUpdatedAt")
    catalogue = container.catalogue
    matched = []
    for row in _rows(catalogue, org, name=name, label=label, tag=tag):
        versions = _versions(catalogue, org, row, label, version, since, until)
        if versions:
            matched.append((row, versions))
    data = [_meta(catalogue, org, row, versions) for row, versions in matched[(page - 1) * limit:page * limit]]
    total = len(matched)
    return {"data": data, "meta": {"page": page, "limit": limit, "totalItems": total,
                                   "totalPages": math.ceil(total / limit)}}


def _rows(catalogue, org: str, *, name: str | None, label: str | None, tag: str | None) -> list[dict[str, Any]]:
    key = None
    if name is not None:
        try:
            key = clean_prompt_name(name).casefold()
        except Invalid:
            return []
    rows, cursor = [], None
    while True:
        found = catalogue.list(org, tag=tag, label=label, name_prefix=key, archived=False, sort="name",
                               limit=MAX_PAGE, cursor=cursor)
        rows += found.items if key is None else [r for r in found.items if r["name_key"] == key]
        if not found.next_cursor:
            return rows
        cursor = found.next_cursor


def _versions(catalogue, org: str, row: dict[str, Any], label: str | None, version: int | None,
              since: datetime | None, until: datetime | None) -> list[int]:
    latest = row["latest_version"]
    numbers = list(range(1, latest + 1))
    if label == "latest":
        numbers = [latest]
    elif label:
        numbers = [row["labels"][label]] if label in row["labels"] else []
    if version is not None:
        numbers = [n for n in numbers if n == version]
    if numbers and (since or until):
        created = _created(catalogue, org, row["prompt_id"])
        numbers = [n for n in numbers
                   if (since is None or created[n] >= since) and (until is None or created[n] < until)]
    return numbers


def _created(catalogue, org: str, prompt_id: str) -> dict[int, datetime]:
    out: dict[int, datetime] = {}
    while True:
        rows = catalogue.versions(org, prompt_id, after=max(out, default=0), limit=MAX_PAGE)
        out.update({r["version"]: _utc(r["created_at"]) for r in rows})
        if len(rows) < MAX_PAGE:
            return out


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _meta(catalogue, org: str, row: dict[str, Any], versions: list[int]) -> dict[str, Any]:
    last, latest = max(versions), row["latest_version"]
    config = row["model_config"]
    if last != latest:  # the config of the last matching version
        config = (catalogue.version(org, row["prompt_id"], last) or row)["model_config"]
    labels = sorted({lb for lb, v in row["labels"].items() if v in versions})
    labels += ["latest"] if latest in versions else []
    return meta_out(row, versions, labels, config)
