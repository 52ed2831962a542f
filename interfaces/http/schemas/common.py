"""Shared schema pieces: strict request models, the error envelope, list pages.

Request bodies are validated in pydantic's python mode (FastAPI parses the JSON first), where a lax
`int` takes `"1"`, `2.0` and `false` and a lax `bool` takes `"true"` and `1`: integer and boolean
fields of request models are always `StrictInt` / `StrictBool` (tests/e2e/test_strict_types.py
checks every one). Query parameters are strings and stay lax.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from interfaces.http.error_codes import summary


def _utc(value: datetime) -> datetime:
    """Read models on SQLite hand back naive UTC datetimes; answer RFC 3339 with an offset."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


Instant = Annotated[datetime, AfterValidator(_utc)]


#: Unpaired surrogates (never in ASCII text: the common case is answered by `isascii`, in C).
_UNSTORABLE = re.compile("[\ud800-\udfff]")


def _unsafe_text(value: Any, depth: int = 0) -> bool:
    """NUL and unpaired surrogates cannot be stored (UTF-8 event store, Postgres text)."""
    if depth > 32:
        return True
    if isinstance(value, str):
        return "\x00" in value or (not value.isascii() and _UNSTORABLE.search(value) is not None)
    if isinstance(value, dict):
        return any(_unsafe_text(k, depth + 1) or _unsafe_text(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_unsafe_text(v, depth + 1) for v in value)
    return False


class RequestModel(BaseModel):
    """Request bodies: unknown fields are rejected, strings must be storable text."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        if _unsafe_text(data):
            raise ValueError("strings may not contain NUL or unpaired surrogate characters, "
                             "and JSON may nest at most 32 levels")
        return data


class ResponseModel(BaseModel):
    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True)


class ErrorDetail(ResponseModel):
    code: str = Field(examples=["PROMPT_VERSION_CONFLICT"])
    message: str = Field(examples=["version 3 is not the latest version"])
    details: dict[str, Any] = Field(default_factory=dict, examples=[{"base_version": 3, "current_version": 4}])


class ErrorResponse(ResponseModel):
    error: ErrorDetail
    request_id: str = Field(examples=["9f1c2a0e4b6d4c1f8e2a7b3c5d6e7f80"])


#: For `responses=` on routes: every error status documents the one shape and its codes
#: (interfaces.http.error_codes); interfaces.http.openapi adds the statuses that depend on the route.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": summary(status)}
    for status in (400, 401, 403, 404, 409, 422, 429, 503)
}
