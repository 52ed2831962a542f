"""The composition root: settings -> event store, read-model engine, projections, supervisor, runners.

It only wires: every decision lives in domain/, application/ or projections/. Tests build a
Container with their own Settings. `build()` is for every process (API, workers, CLI);
`http_services()` adds what only the HTTP API needs (tokens, throttles, limiter)."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from application import PromptForge
from application.access_cache import AccessCache
from application.log_head import LogHead
from application.security import derive_webhook_key
from application.serialise import KeyedLocks
from interfaces.command_locks import PostgresCommandLocks
from interfaces.event_store import PostgresHeadReader, async_head_probe, eventsourcing_env, head_probe, head_reader
from interfaces.observability.metrics import Metrics, ProjectionCollector
from interfaces.schema_lock import schema_lock
from interfaces.settings import Settings
from interfaces.startup import reachable
from projections import catchup, tracking
from projections.api_keys import ApiKeys
from projections.audit import AuditLog
from projections.base import Projection
from projections.cached_reads import DependencyCache, ReadModelPosition
from projections.catalogue import Catalogue, KeywordSearch
from projections.changes import Changes
from projections.db import create_schema, make_engine
from projections.label_history import LabelHistory
from projections.liveness import quiet_event_store_checks
from projections.memberships import Memberships
from projections.releases import Releases
from projections.reviews import Reviews
from projections.registry import RETIRED, SQL_PROJECTIONS
from projections.search import SearchService
from projections.sessions import Sessions
from projections.source import ApplicationEventSource, RecentEvents
from projections.supervisor import VECTORS, ProjectionSupervisor
from projections.vectors.index import VectorIndexError, VectorIndexUnavailable
from projections.vectors.projection import VectorProjection
from projections.webhooks import Webhooks
from workers.runner import ProjectionRunner
from workers.webhooks.dispatcher import DeliveryPolicy, Dispatcher
from workers.webhooks.runner import WebhookRunner
from workers.webhooks.store import DeliveryStore

log = logging.getLogger(__name__)
#: Aggregates (API keys, organisations, sessions, users) kept per process for authentication (adr/0020).
ACCESS_CACHE_SIZE = 10_000
#: Resolved prompts kept per API process for the by-name fetch (adr/0020).
FETCH_CACHE_SIZE = 10_000


@dataclass
class HttpServices:
    """What only the HTTP API needs, built once per app."""

    tokens: Any
    login_throttle: Any
    rate_limiter: Any
    #: The process's one change-feed poller (SSE streams and long polls wait on it).
    change_hub: Any
    #: The by-name fetch's resolved answers, each valid while the prompts it read have not changed (adr/0020).
    fetch_cache: Any = None
    catalogue_position: Any = None
    #: The log-head check shared by the requests answered on the event loop (adr/0020).
    head_check: Any = None


@dataclass
class Container:
    settings: Settings
    app: PromptForge
    engine: Engine
    catalogue: Catalogue
    label_history: LabelHistory
    memberships: Memberships
    api_keys: ApiKeys
    audit: AuditLog
    sessions: Sessions
    reviews: Reviews
    releases: Releases
    changes: Changes
    webhooks: Webhooks
    supervisor: ProjectionSupervisor
    search: SearchService
    #: Prometheus metrics of this container (its own registry; interfaces.observability).
    metrics: Metrics
    vector_projection: VectorProjection | None = None
    #: Why the vector index was not opened in this process (e.g. the shard is held elsewhere).
    vectors_error: str | None = None
    #: Webhook deliveries: the worker's own tables, and the dispatcher (workers.webhooks).
    deliveries: DeliveryStore | None = None
    dispatcher: Dispatcher | None = None
    runners: list[Any] = field(default_factory=list)
    nudger: Any = None
    #: The commands' cross-process locks (Postgres advisory locks on connections of their own).
    command_locks: PostgresCommandLocks | None = None

    @property
    def projections(self) -> dict[str, Projection]:
        """The SQL read models by name."""
        return self.supervisor.sql

    def start(self) -> None:
        for runner in self.runners:
            runner.start()
            runner.wake()

    def close(self) -> None:
        for runner in self.runners:
            runner.stop()
        if self.vector_projection is not None:
            self.vector_projection.index.close()
        if self.app.log_head is not None:
            self.app.log_head.close()
        if self.command_locks is not None:
            self.command_locks.close()
        self.app.close()
        self.engine.dispose()


_embedders: dict[tuple[str | None, str, Path], Any] = {}
_embedders_lock = threading.Lock()


def _shared_embedder(settings: Settings):
    """One model per process, path and backend: it is ~90 MB and takes seconds to load (lazily, on
    first use; an ONNX backend exports the model into the cache directory once)."""
    from projections.vectors.embedder import Embedder

    key = (settings.model_path, settings.embedding_backend, settings.model_cache_dir or settings.data_dir / "models")
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = Embedder(key[0], backend=key[1], cache_dir=key[2])
        return _embedders[key]


def _open_index(settings: Settings):
    if settings.qdrant_url:
        from projections.vectors.qdrant_server import QdrantServerIndex

        return QdrantServerIndex.from_url(settings.qdrant_url, collection=settings.qdrant_collection)
    from projections.vectors.qdrant_edge import QdrantEdgeIndex

    return QdrantEdgeIndex(settings.data_dir / "vectors")


def _vector_projection(settings: Settings, app: PromptForge, engine: Engine,
                       metrics: Metrics) -> tuple[VectorProjection | None, str | None]:
    """The vector projection over a Qdrant server or the in-process qdrant-edge shard, or why not."""
    index = _open_index(settings)
    try:
        index.ensure_ready()
    except VectorIndexUnavailable:  # a Qdrant outage must not stop commands; the projection retries
        pass
    except VectorIndexError as exc:  # e.g. the embedded shard is held by another process
        log.warning("vector index not opened (%s); semantic search disabled in this process", exc)
        return None, str(exc)
    return VectorProjection(engine, index, _shared_embedder(settings),
                            on_embed=metrics.observe_embedding), None


def _index_freshness(supervisor: ProjectionSupervisor, timeout: float):
    """How far the vector index lags, for the search service (projections.search.IndexFreshness)."""

    def notice(min_position: int | None) -> str | None:
        # both read models the search reads: vector hits are kept only when the catalogue has the row
        if min_position and not supervisor.wait_for(min_position, timeout, [Catalogue.name, VECTORS]):
            return "the vector index has not reached min_position yet: semantic results may miss recent changes"
        positions = supervisor.positions()
        if positions.get(VECTORS, 0) < positions.get(Catalogue.name, 0):
            return "the vector index is catching up: semantic results may miss recent changes"
        return None

    return notice


def build(settings: Settings | None = None, *, vectors: bool | None = None) -> Container:
    """Wire a container. `vectors=False` leaves the vector index closed (CLI, and workers when the
    index is the single-process embedded engine, which the API process owns)."""
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    reachable(settings)  # bounded retries, then one clear line (adr/0010)
    engine = make_engine(settings.read_model_url, pool_size=settings.db_pool_size)
    with schema_lock(settings.event_store_url):  # start-up DDL, one process at a time
        app = PromptForge(env=eventsourcing_env(settings.event_store_url, settings.db_pool_size,
                                                settings.coalesce_saves))
        quiet_event_store_checks(app.recorder)  # ping a pooled connection only when it may be gone (adr/0030)
        create_schema(engine)
        sql = {cls.name: cls(engine) for cls in SQL_PROJECTIONS}
        vector_schema = [VectorProjection.versioned(settings.embedding_backend)] if settings.vectors_enabled else []
        for projection in [*SQL_PROJECTIONS, *vector_schema]:
            if catchup.sync_schema(engine, projection):
                log.warning("projection %s changed shape: replaying it from the log", projection.name)
        for name in RETIRED:
            tracking.forget(engine, name)
    # Authentication and authorisation from a per-process cache, checked against the log head (adr/0020).
    url = settings.event_store_url
    head = LogHead(app.recorder, read=head_reader(url, app.recorder), probe=head_probe(url, app.recorder))
    app.use_access_cache(head, AccessCache(app.repository.get, maxsize=ACCESS_CACHE_SIZE))
    command_locks = None
    if isinstance(head.reader, PostgresHeadReader):  # several API processes: queue across them too (adr/0019, 0030)
        command_locks = PostgresCommandLocks.for_recorder(app.recorder)
        app.command_locks = KeyedLocks(command_locks.hold)
    app.webhook_key = derive_webhook_key(settings.webhook_key or settings.jwt_secret)
    app.allow_private_webhooks = settings.webhooks_allow_private_networks
    metrics = Metrics()
    app.command_observer = metrics.observe_command  # promptforge_commands_total
    vector_projection, vectors_error = None, None
    if settings.vectors_enabled if vectors is None else vectors:
        vector_projection, vectors_error = _vector_projection(settings, app, engine, metrics)
    # One decoded read of each new batch for every projection of a catch-up round (adr/0029).
    source = RecentEvents(ApplicationEventSource(app), capacity=settings.projection_batch_size)
    supervisor = ProjectionSupervisor(engine, source, sql,
                                      vectors=vector_projection, vectors_enabled=settings.vectors_enabled,
                                      batch_size=settings.projection_batch_size)
    keyword = KeywordSearch(engine)
    index = vector_projection.index if vector_projection else None
    embedder = vector_projection.embedder if vector_projection else None
    search = SearchService(sql[Catalogue.name], keyword, index, embedder,
                           freshness=_index_freshness(supervisor, settings.query_wait_seconds) if index else None,
                           observe=metrics.observe_search)
    container = Container(
        settings, app, engine, sql["catalogue"], sql["label_history"], sql["memberships"], sql["api_keys"],
        sql["audit"], sql["sessions"], sql["reviews"], sql["releases"], sql["changes"], sql["webhooks"], supervisor,
        search, metrics, vector_projection, vectors_error,
    )
    container.deliveries = DeliveryStore(engine)
    container.dispatcher = Dispatcher(app, engine, container.deliveries, sql["webhooks"], sql["changes"],
                                      DeliveryPolicy.from_settings(settings))
    metrics.add_collector(ProjectionCollector(supervisor.status))
    container.command_locks = command_locks
    _wire_runners(container)
    if settings.redis_url:
        from workers.broker import Nudger, make_broker

        container.nudger = Nudger(make_broker(settings.redis_url))
        app.add_commit_listener(container.nudger)
    return container


def _wire_runners(container: Container) -> None:
    settings, supervisor = container.settings, container.supervisor
    poll = settings.projection_poll_seconds
    if settings.run_projections_inprocess:
        runner = ProjectionRunner(lambda: supervisor.catch_up(list(supervisor.sql)), poll)
        container.runners.append(runner)
    # The embedded vector engine is single-process: the process that opened it projects into it.
    # Its own thread, so a model load or an embedding batch never holds up the SQL read models.
    if container.vector_projection is not None and (settings.run_projections_inprocess or not settings.qdrant_url):
        container.runners.append(ProjectionRunner(lambda: supervisor.catch_up([VECTORS]), poll, name="vector-runner"))
    for runner in container.runners:
        container.app.add_commit_listener(runner.wake)
        supervisor.wakers.append(runner.wake)
    if settings.run_projections_inprocess:  # woken by the projections' progress, not by commits
        # Each delivery in flight holds a pooled connection for its lock and briefly another one.
        concurrency = min(settings.webhook_concurrency, max(1, settings.db_pool_size // 2))
        container.runners.append(WebhookRunner(container.dispatcher, supervisor.progress, poll, concurrency))


def http_services(container: Container) -> HttpServices:
    from interfaces.http.feed import ChangeHub
    from interfaces.http.head_check import HeadCheck
    from interfaces.http.ratelimit import RateLimiter
    from interfaces.http.security import TokenService
    from interfaces.http.throttling import LoginThrottle

    settings = container.settings
    supervisor = container.supervisor
    hub = ChangeHub(container.changes.since, lambda: supervisor.positions().get(Changes.name, 0),
                    progress=supervisor.progress if container.runners else None)
    head = container.app.log_head
    heads = fetch_cache = None
    if head is not None:
        heads = HeadCheck(head.check, head.unchanged, probe=async_head_probe(head.reader),
                          position=lambda: head.position)
        fetch_cache = DependencyCache(FETCH_CACHE_SIZE)
        head.subscribe(fetch_cache.changed)
        # Told of every event after this; any answer must be computed at or above what came before
        # (no request is served yet: no check runs concurrently).
        fetch_cache.changed(None, head.position or 0)
    return HttpServices(TokenService(settings), LoginThrottle(settings), RateLimiter(settings), hub,
                        fetch_cache, ReadModelPosition(container.engine, Catalogue.name), heads)
