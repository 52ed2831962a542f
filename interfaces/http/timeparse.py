"""RFC 3339 instants from query parameters (time travel, audit ranges)."""
from __future__ import annotations

from datetime import datetime, timezone

from interfaces.http.errors import ApiError


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
