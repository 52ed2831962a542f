"""Readiness checks: event store, read-model DB, Redis (when configured), Qdrant (when configured).

Each check is reported separately with `ok`/`error` and its latency; every configured dependency
is required, so any failure makes `/readyz` answer 503. Errors are reported by exception type
only (a message could carry a connection URL with a password)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

REDIS_TIMEOUT = 1.0


def _timed(check: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
        result: dict[str, Any] = {"status": "ok"}
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready"
        result = {"status": "error", "error": type(exc).__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def _event_store(container) -> None:
    container.app.head_position()


def _read_model(container) -> None:
    with container.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _redis(container) -> None:
    import redis

    client = container.extras.get("readiness_redis")
    if client is None:
        client = redis.Redis.from_url(container.settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT,
                                      socket_timeout=REDIS_TIMEOUT)
        container.extras["readiness_redis"] = client
    client.ping()


def _qdrant(container) -> None:
    projection = container.vector_projection
    if projection is None:
        raise RuntimeError(container.extras.get("vectors_error") or "vector index not opened")
    index = projection.index
    client = getattr(index, "_client", None)
    if client is not None and hasattr(client, "get_collections"):
        client.get_collections()
    else:
        index.count()


def readiness(container) -> tuple[bool, dict[str, dict[str, Any]]]:
    settings = container.settings
    checks: dict[str, Callable[[Any], None]] = {"event_store": _event_store, "read_model": _read_model}
    if settings.redis_url:
        checks["redis"] = _redis
    if settings.qdrant_url and settings.vectors_enabled:
        checks["qdrant"] = _qdrant
    results = {name: _timed(lambda c=check: c(container)) for name, check in checks.items()}
    return all(r["status"] == "ok" for r in results.values()), results
