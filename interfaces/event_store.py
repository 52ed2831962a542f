"""Translate the event-store URL into eventsourcing's persistence environment."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from domain.errors import Invalid


def eventsourcing_env(url: str, pool_size: int = 20) -> dict[str, str]:
    """eventsourcing settings for `sqlite:///path`, `postgresql://...[?schema=name]` or `memory://`.

    Postgres keeps the library's default insert path (`LOCK TABLE ... IN EXCLUSIVE MODE`), which
    keeps commit order equal to notification id order: projections rely on it (adr/0002)."""
    parts = urlsplit(url)
    # Aggregate cache with fast-forward: a cached aggregate is brought up to date from the store on
    # every get (so other processes' writes are seen), copied out (a failed command cannot taint it).
    # Measured: 239 -> 392 commands/s on Postgres, 1 thread (bench/results/commands_throughput.md).
    cache = {"AGGREGATE_CACHE_MAXSIZE": "1000", "AGGREGATE_CACHE_FASTFORWARD": "y"}
    scheme = parts.scheme.split("+")[0]
    if scheme == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo", **cache}
    if scheme == "sqlite":
        path = url.split("sqlite:///", 1)[1] if "sqlite:///" in url else ""
        if not path:
            raise Invalid("sqlite event store URL needs a path: sqlite:///var/events.db", code="INVALID_SETTINGS")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path, "SQLITE_LOCK_TIMEOUT": "30",
                **cache}
    if scheme in ("postgresql", "postgres"):
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(pool_size),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_PRE_PING": "y",
            **cache,
        }
        schema = parse_qs(parts.query).get("schema")
        if schema:
            env["POSTGRES_SCHEMA"] = schema[0]
        return env
    raise Invalid(f"unsupported event store URL scheme {parts.scheme!r}", code="INVALID_SETTINGS")
