"""Pagination kit shared by the read models: opaque cursors and page limits."""
from __future__ import annotations

import base64
import json
from typing import Any

from domain.errors import Invalid

DEFAULT_PAGE = 50
MAX_PAGE = 200


def clamp(limit: int, maximum: int = MAX_PAGE) -> int:
    return max(1, min(int(limit), maximum))


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor holding JSON values (e.g. the sort key and id of the last row)."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The values `encode_cursor` packed; 400 `INVALID_CURSOR` for anything else."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != arity:
            raise ValueError
        return parts
    except (ValueError, TypeError, UnicodeDecodeError):
        raise Invalid("invalid or foreign cursor", code="INVALID_CURSOR") from None
