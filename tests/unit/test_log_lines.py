"""The JSON log line's cheaper pieces (interfaces.observability.logs, interfaces.http.middleware)
write exactly what they replaced: the timestamp as datetime formats it, the access line as
`log.info` made it."""
from __future__ import annotations

import io
import json
import logging
import random
import time
from datetime import datetime, timezone

from interfaces.http.middleware import access_line
from interfaces.observability.logs import JsonFormatter, request_context, timestamp


def _reference(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")


def test_the_timestamp_is_datetimes_to_the_millisecond():
    rng = random.Random(14)
    now = time.time()
    cases = [now + rng.uniform(-86_400 * 400, 86_400) for _ in range(50_000)]
    # microsecond halves (rounded half-even by datetime), the last microsecond of a second, whole seconds
    cases += [1_765_000_000 + k / 2e6 for k in range(0, 3_000_000, 997)]
    cases += [0.0, 1.0, 0.9999995, 1_765_000_000.9999995, 1_765_000_000.0000005, 1_765_000_000.9995, 1e9 + 0.5e-6]
    assert [c for c in cases if timestamp(c) != _reference(c)] == []


def test_the_access_line_is_the_log_info_line_it_replaced():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("promptforge.http")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = request_context.set({"request_id": "r-1", "org_id": "o", "api_key_id": "k"})
    try:
        logger.info("%s %s %s %.1fms request_id=%s", "GET", "/v1/x/{id}", 200, 1.25, "r-1",
                    extra={"method": "GET", "route": "/v1/x/{id}", "status": 200, "duration_ms": 1.25})
        access_line("GET", "/v1/x/{id}", 200, 0.00125, "r-1")
        logger.setLevel(logging.WARNING)
        access_line("GET", "/v1/x/{id}", 200, 0.00125, "r-2")  # below the level: nothing
    finally:
        request_context.reset(token)
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    before, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert before.pop("ts") and after.pop("ts")
    assert after == before
    assert list(after) == ["level", "logger", "msg", "request_id", "org_id", "api_key_id", "method", "route",
                           "status", "duration_ms"]
