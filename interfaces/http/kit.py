"""The small kit every router shares: path ids, time parameters, labels, ETags and conditions.

Pagination (cursors, page limits) is the read models' own (projections.paging)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from domain.errors import NotFound
from interfaces.http.errors import ApiError

MAX_VERSION = 2**31 - 1
AsOf = Annotated[str | None, Query(max_length=64, description="RFC 3339 instant, e.g. 2025-01-31T12:00:00Z: "
                                   "answer from the event stream as of that moment")]


def prompt_id_of(value: str) -> UUID:
    """Path ids that are not UUIDs name nothing: 404, like any other unknown id."""
    try:
        return UUID(value) if len(value) <= 64 else UUID("!")
    except ValueError:
        raise NotFound("prompt not found", code="PROMPT_NOT_FOUND") from None


def parse_instant(value: str, name: str) -> datetime:
    """An aware datetime in UTC. Naive or malformed values are 400 INVALID_TIMESTAMP."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError("no offset")
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError, TypeError):
        raise ApiError(400, "INVALID_TIMESTAMP", f"{name} must be an RFC 3339 time with an offset, "
                       "e.g. 2025-01-31T12:00:00Z", {"parameter": name}) from None


def instant_or_none(value: str | None, name: str) -> datetime | None:
    return parse_instant(value, name) if value is not None else None


def norm_label(label: str | None) -> str | None:
    return label.strip().lower() if label is not None else None


# -- ETags and conditions -------------------------------------------------------------------
def etag(prompt_id: Any, version: int) -> str:
    """The validator of one version's content (versions): it changes with the version."""
    return f'"{prompt_id}:{version}"'


def prompt_etag(row: dict[str, Any]) -> str:
    """The validator of a prompt's whole representation (labels, archived flag included): it also
    changes with the position of the last event folded into the row. `If-Match` on a revision
    compares the version it names."""
    return f'"{row["prompt_id"]}:{row["latest_version"]}:{row["position"]}"'


def etag_matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or tag in candidates


def parse_if_match(header: str, prompt_id: Any) -> int:
    """The version an `If-Match` names: the ETag of GET .../prompts/{id}
    (`"<prompt_id>:<version>:<position>"`), a version's ETag (`"<prompt_id>:<version>"`) or a bare
    version number. Only the version is compared (labels moving meanwhile do not stale a revision)."""
    parts = header.strip().removeprefix("W/").strip('"').split(":")
    if len(parts) > 3 or (len(parts) == 3 and not parts[2].isdigit()):
        raise ApiError(400, "INVALID_PARAMETER", 'If-Match must be the ETag "<prompt_id>:<version>[:<position>]"')
    owner, number = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
    if owner and owner != str(prompt_id):
        raise ApiError(412, "PRECONDITION_FAILED", "If-Match names another prompt")
    if not number.isdigit() or not 1 <= int(number) <= MAX_VERSION:
        raise ApiError(400, "INVALID_PARAMETER", 'If-Match must be the ETag "<prompt_id>:<version>[:<position>]"')
    return int(number)


def version_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_VERSION:
        raise NotFound("version not found", code="VERSION_NOT_FOUND")
    return int(value)
