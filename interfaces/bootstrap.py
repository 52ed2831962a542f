"""The composition root: settings -> event store, read-model engine, projections, runner.

Everything is wired here and only here; tests build a Container with their own Settings."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from application import PromptForge
from interfaces.event_store import eventsourcing_env
from interfaces.observability.metrics import Metrics, ProjectionCollector, instrument_commands
from interfaces.schema_lock import schema_lock
from interfaces.settings import Settings
from projections import catchup, tracking
from projections.api_keys import ApiKeys
from projections.audit import AuditLog
from projections.base import Projection
from projections.catalogue import Catalogue
from projections.db import create_schema, make_engine
from projections.label_history import LabelHistory
from projections.memberships import Memberships
from projections.registry import SQL_PROJECTIONS
from projections.sessions import Sessions
from projections.keyword_search import KeywordSearch
from projections.search import SearchService
from projections.source import ApplicationEventSource
from projections.vector_projection import VectorProjection
from projections.vectors.index import VectorIndexError, VectorIndexUnavailable
from projections.versions import VersionHistory
from workers.runner import ProjectionRunner

log = logging.getLogger(__name__)


@dataclass
class ProjectionStatus:
    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float


@dataclass
class Container:
    settings: Settings
    app: PromptForge
    engine: Engine
    projections: dict[str, Projection]
    source: ApplicationEventSource
    runner: ProjectionRunner | None = None
    #: Separate thread for the vector projection, so a slow model load or embedding batch never
    #: holds up the SQL read models (read-your-writes waits on those).
    vector_runner: ProjectionRunner | None = None
    vector_projection: VectorProjection | None = None
    search: SearchService | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    #: Prometheus metrics of this container (its own registry; interfaces.observability).
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def projection_names(self) -> list[str]:
        """Every projection, SQL read models first (the vector projection reads the catalogue)."""
        return list(self.projections) + ([VectorProjection.name] if self.vector_projection else [])

    # -- typed access to the read models ----------------------------------------------------
    @property
    def catalogue(self) -> Catalogue:
        return self.projections["catalogue"]  # type: ignore[return-value]

    @property
    def versions(self) -> VersionHistory:
        return self.projections["versions"]  # type: ignore[return-value]

    @property
    def label_history(self) -> LabelHistory:
        return self.projections["label_history"]  # type: ignore[return-value]

    @property
    def memberships(self) -> Memberships:
        return self.projections["memberships"]  # type: ignore[return-value]

    @property
    def api_keys(self) -> ApiKeys:
        return self.projections["api_keys"]  # type: ignore[return-value]

    @property
    def audit(self) -> AuditLog:
        return self.projections["audit"]  # type: ignore[return-value]

    @property
    def sessions(self) -> Sessions:
        return self.projections["sessions"]  # type: ignore[return-value]

    # -- projection driving -----------------------------------------------------------------
    def catch_up(self, name: str | None = None) -> int:
        """Fold all pending events into one projection (or all of them), synchronously."""
        names = [name] if name else self.projection_names
        batch = self.settings.projection_batch_size
        return sum(self._catch_up_one(n, batch) for n in names)

    def _catch_up_one(self, name: str, batch: int, progress=None) -> int:
        if name == VectorProjection.name and self.vector_projection is not None:
            return self.vector_projection.catch_up(self.source, min(batch, 256), progress)
        return catchup.catch_up(self.projections[name], self.source, batch, progress)

    def catch_up_jobs(self, sql: bool = True, vectors: bool = True):
        batch = self.settings.projection_batch_size
        names = (list(self.projections) if sql else []) + (
            [VectorProjection.name] if vectors and self.vector_projection else [])
        return [lambda n=n: self._catch_up_one(n, batch) for n in names]

    def rebuild(self, name: str, progress=None) -> int:
        if name == VectorProjection.name and self.vector_projection is not None:
            self.vector_projection.reset()
        else:
            catchup.reset(self.projections[name])
        return self._catch_up_one(name, self.settings.projection_batch_size, progress)

    def status(self) -> list[ProjectionStatus]:
        """Position, head and lag of each projection. Lag in seconds is the age of the oldest
        event the projection has not applied yet (0 when up to date)."""
        head = self.source.head()
        positions = tracking.read_all(self.engine)
        out = []
        names = self.projection_names + [n for n in sorted(positions) if n not in self.projection_names]
        for name in names:
            position = positions[name].position if name in positions else 0
            lag_seconds = 0.0
            if position < head:
                pending = self.source.read(position, 1)
                lag_seconds = max(0.0, time.time() - _epoch(pending[0].at)) if pending else 0.0
            out.append(ProjectionStatus(name, position, head, max(0, head - position), lag_seconds))
        return out

    def wait_for(self, position: int, timeout: float, names: list[str] | None = None) -> bool:
        """Block until every named projection has reached `position` (read-your-writes)."""
        deadline = time.monotonic() + timeout
        names = names or list(self.projections)
        while True:
            positions = tracking.read_all(self.engine)
            if all(positions.get(n) and positions[n].position >= position for n in names):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for runner in self.runners:
                runner.wake()
            if self.runner is not None:
                with self.runner.progress:
                    self.runner.progress.wait(min(remaining, 0.05))
            else:
                time.sleep(min(remaining, 0.02))

    @property
    def runners(self) -> list[ProjectionRunner]:
        return [r for r in (self.runner, self.vector_runner) if r is not None]

    def start(self) -> None:
        for runner in self.runners:
            runner.start()
            runner.wake()

    def close(self) -> None:
        for runner in self.runners:
            runner.stop()
        if self.vector_projection is not None:
            self.vector_projection.index.close()
        self.app.close()
        self.engine.dispose()


def _epoch(value) -> float:
    from datetime import timezone

    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


_embedders: dict[str | None, Any] = {}
_embedders_lock = threading.Lock()


def _shared_embedder(model_path: str | None):
    """One model per process and path: it is ~90 MB and takes seconds to load (lazily, on first use)."""
    from projections.vectors.embedder import Embedder

    with _embedders_lock:
        if model_path not in _embedders:
            _embedders[model_path] = Embedder(model_path)
        return _embedders[model_path]


def _wire_search(container: Container) -> None:
    """Vector index (Qdrant server or in-process qdrant-edge), embedder, vector projection, search."""

    settings = container.settings
    if settings.qdrant_url:
        from projections.vectors.qdrant_server import QdrantServerIndex

        index = QdrantServerIndex.from_url(settings.qdrant_url, collection=settings.qdrant_collection)
    else:
        from projections.vectors.qdrant_edge import QdrantEdgeIndex

        index = QdrantEdgeIndex(settings.data_dir / "vectors")
    try:
        index.ensure_ready()
    except VectorIndexUnavailable:  # a Qdrant outage must not stop commands; the projection retries
        pass
    except VectorIndexError as exc:  # e.g. the embedded shard is held by another process
        log.warning("vector index not opened (%s); semantic search disabled in this process", exc)
        container.extras["vectors_error"] = str(exc)
        return
    embedder = _shared_embedder(settings.model_path)
    with schema_lock(settings.event_store_url):
        tracking.ensure(container.engine, VectorProjection.name)
    container.vector_projection = VectorProjection(container.engine, index, embedder, container.catalogue,
                                                   on_embed=container.metrics.observe_embedding)
    container.search = SearchService(container.catalogue, KeywordSearch(container.engine), index, embedder,
                                     observe=container.metrics.observe_search)


def build(settings: Settings | None = None, *, vectors: bool | None = None) -> Container:
    """Wire a container. `vectors=False` leaves the vector index closed (CLI, and workers when the
    index is the single-process embedded engine, which the API process owns)."""
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.read_model_url, pool_size=settings.db_pool_size)
    with schema_lock(settings.event_store_url):  # start-up DDL, one process at a time
        app = PromptForge(env=eventsourcing_env(settings.event_store_url, settings.db_pool_size))
        create_schema(engine)
        projections = {cls.name: cls(engine) for cls in SQL_PROJECTIONS}
        for name in projections:
            tracking.ensure(engine, name)
    container = Container(settings, app, engine, projections, ApplicationEventSource(app))
    instrument_commands(app, container.metrics)  # promptforge_commands_total, in this one place
    container.metrics.add_collector(ProjectionCollector(container.status))
    if settings.vectors_enabled if vectors is None else vectors:
        _wire_search(container)
    if container.search is None:  # keyword search always answers; semantic says it is unavailable
        container.search = SearchService(container.catalogue, KeywordSearch(container.engine), None, None,
                                         observe=container.metrics.observe_search)
    poll = settings.projection_poll_seconds
    if settings.run_projections_inprocess:
        container.runner = ProjectionRunner(container.catch_up_jobs(vectors=False), poll)
        app.add_commit_listener(container.runner.wake)
    # The embedded vector engine is single-process: the process that opened it projects into it.
    if container.vector_projection is not None and (settings.run_projections_inprocess or not settings.qdrant_url):
        container.vector_runner = ProjectionRunner(container.catch_up_jobs(sql=False), poll, name="vector-runner")
        app.add_commit_listener(container.vector_runner.wake)
    if settings.redis_url:
        from workers.broker import Nudger, make_broker

        container.extras["nudger"] = Nudger(make_broker(settings.redis_url))
        app.add_commit_listener(container.extras["nudger"])
    return container
