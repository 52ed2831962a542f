"""Readiness checks: event store, read-model DB, Redis (when configured), Qdrant (when configured).

Each check is reported separately with `ok`/`error` and its latency. Only what stops the service
makes `/readyz` answer 503: the event store and the read-model database. Redis (nudges, shared
rate-limit counters) and Qdrant (semantic search) being down degrades the service without
stopping it (commands succeed, projections catch up on their tick, hybrid search answers with
keyword results), and every instance shares them, so a load balancer taking instances out of
rotation for them would take them all out: the answer is 200 with status `degraded`.
Errors are reported by exception type only (a message could carry a connection URL with a password)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

REDIS_TIMEOUT = 1.0
#: Dependencies whose outage degrades the service but does not stop it (see module docstring).
DEGRADING = frozenset({"redis", "qdrant"})
_redis_client: tuple[str, Any] | None = None


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

    global _redis_client
    if _redis_client is None or _redis_client[0] != container.settings.redis_url:
        _redis_client = (container.settings.redis_url, redis.Redis.from_url(
            container.settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT))
    _redis_client[1].ping()


def _qdrant(container) -> None:
    projection = container.vector_projection
    if projection is None:
        raise RuntimeError(container.vectors_error or "vector index not opened")
    index = projection.index
    client = getattr(index, "_client", None)
    if client is not None and hasattr(client, "get_collections"):
        client.get_collections()
    else:
        index.count()


def readiness(container) -> tuple[str, dict[str, dict[str, Any]]]:
    """("ok" | "degraded" | "unavailable", the checks). Only "unavailable" means: do not route here."""
    settings = container.settings
    checks: dict[str, Callable[[Any], None]] = {"event_store": _event_store, "read_model": _read_model}
    if settings.redis_url:
        checks["redis"] = _redis
    if settings.qdrant_url and settings.vectors_enabled:
        checks["qdrant"] = _qdrant
    results = {name: _timed(lambda c=check: c(container)) for name, check in checks.items()}
    failed = {name for name, r in results.items() if r["status"] != "ok"}
    if failed - DEGRADING:
        return "unavailable", results
    return ("degraded" if failed else "ok"), results
