"""Prometheus metrics. The metric names are a contract with deploy/grafana/dashboards/promptforge.json.

Each `Metrics` owns its own `CollectorRegistry` (one per container), so tests never collide.

Several processes (uvicorn `--workers N`, dramatiq `--processes N`): when `PROMETHEUS_MULTIPROC_DIR`
is set *before prometheus_client is imported*, counters and histograms are written to per-process
files in that directory, and `exposition_registry()` aggregates them with `MultiProcessCollector`
at scrape time, so any one process answers for all of them. Gauges here are all computed at scrape
time by custom collectors (projection lag from the read-model DB, queue depth from Redis), so they
need no cross-process aggregation.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from domain.errors import Conflict, DomainError, Forbidden, Invalid, LimitExceeded, NotFound, Unauthenticated

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SEARCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EMBED_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Domain error kind -> `outcome` label (most specific first: LimitExceeded is not a Conflict).
OUTCOMES: tuple[tuple[type[DomainError], str], ...] = (
    (LimitExceeded, "limit_exceeded"), (NotFound, "not_found"), (Unauthenticated, "unauthenticated"),
    (Forbidden, "forbidden"), (Conflict, "conflict"), (Invalid, "invalid"),
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def outcome_of(exc: BaseException) -> str:
    for kind, label in OUTCOMES:
        if isinstance(exc, kind):
            return label
    return "domain_error" if isinstance(exc, DomainError) else "error"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("promptforge_http_requests_total", "HTTP requests by route template.",
                                     ["method", "route", "status"], registry=r)
        self.http_duration = Histogram("promptforge_http_request_duration_seconds", "HTTP request duration.",
                                       ["method", "route"], buckets=HTTP_BUCKETS, registry=r)
        self.commands = Counter("promptforge_commands_total", "Application commands by outcome.",
                                ["command", "outcome"], registry=r)
        self.search_duration = Histogram("promptforge_search_duration_seconds", "Search duration by mode.",
                                         ["mode"], buckets=SEARCH_BUCKETS, registry=r)
        self.embedding_batch = Histogram("promptforge_embedding_batch_seconds",
                                         "Duration of one embedding batch of the vector projection.",
                                         buckets=EMBED_BUCKETS, registry=r)
        self._scrape_collectors: list[Any] = []
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    # -- callbacks handed to the projections ----------------------------------------------
    def observe_search(self, mode: str, seconds: float) -> None:
        self.search_duration.labels(mode=mode).observe(seconds)

    def observe_embedding(self, count: int, seconds: float) -> None:
        self.embedding_batch.observe(seconds)

    def observe_command(self, command: str, error: BaseException | None, seconds: float) -> None:
        """The application's command observer (application.commands)."""
        self.commands.labels(command=command, outcome="ok" if error is None else outcome_of(error)).inc()

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        children = self._http_children.get((method, route, status))
        if children is None:  # the labelled series, looked up once per (method, route, status)
            children = (self.http_requests.labels(method=method, route=route, status=str(status)),
                        self.http_duration.labels(method=method, route=route))
            if len(self._http_children) >= 4096:
                self._http_children.clear()
            self._http_children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    # -- scrape-time collectors -----------------------------------------------------------
    def add_collector(self, collector: Any) -> None:
        """A collector computed at scrape time (gauges): exposed by this process only."""
        self.registry.register(collector)
        self._scrape_collectors.append(collector)

    def exposition_registry(self) -> CollectorRegistry:
        """The registry to expose: this one, or (multi-process mode) the aggregate of every
        process's files plus this process's scrape-time collectors."""
        path = multiprocess_dir()
        if not path:
            return self.registry
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        for collector in self._scrape_collectors:
            registry.register(collector)
        return registry

    def render(self) -> bytes:
        return generate_latest(self.exposition_registry())


class ProjectionCollector:
    """`promptforge_projection_{position,lag_events,lag_seconds,failing}{projection}` from `status()`
    at scrape time (failing: 1 while the projection is stuck on an error, in any process)."""

    def __init__(self, status: Callable[[], list[Any]]):
        self.status = status

    def describe(self):
        return []  # computed at scrape time; nothing to check at registration

    def collect(self):
        position = GaugeMetricFamily("promptforge_projection_position", "Log position applied by the projection.",
                                     labels=["projection"])
        lag_events = GaugeMetricFamily("promptforge_projection_lag_events",
                                       "Events in the log not yet applied by the projection.", labels=["projection"])
        lag_seconds = GaugeMetricFamily("promptforge_projection_lag_seconds",
                                        "Age of the oldest event not yet applied (0 when up to date).",
                                        labels=["projection"])
        failing = GaugeMetricFamily("promptforge_projection_failing",
                                    "1 while the projection is stuck on an error (see `projections status`).",
                                    labels=["projection"])
        try:
            rows = self.status()
        except Exception as exc:  # a scrape must not fail because the DB is down (readyz says so)
            log.warning("projection status unavailable for metrics (%s)", type(exc).__name__)
            rows = []
        for row in rows:
            position.add_metric([row.name], row.position)
            lag_events.add_metric([row.name], row.lag_events)
            lag_seconds.add_metric([row.name], row.lag_seconds)
            failing.add_metric([row.name], 1.0 if row.error else 0.0)
        yield from (position, lag_events, lag_seconds, failing)


class QueueDepthCollector:
    """`promptforge_worker_queue_depth{queue}`: messages waiting in dramatiq's Redis queues
    (`<queue>` ready, `<queue>.DQ` delayed/retrying), read at scrape time."""

    def __init__(self, redis_client: Any, queues: list[str], namespace: str = "dramatiq"):
        self.redis = redis_client
        self.queues = queues
        self.namespace = namespace

    def describe(self):
        return []

    def collect(self):
        depth = GaugeMetricFamily("promptforge_worker_queue_depth", "Messages waiting in a dramatiq queue.",
                                  labels=["queue"])
        for queue in self.queues:
            for name in (queue, f"{queue}.DQ"):
                try:
                    depth.add_metric([name], float(self.redis.llen(f"{self.namespace}:{name}")))
                except Exception as exc:
                    log.warning("queue depth unavailable (%s)", type(exc).__name__)
                    yield depth
                    return
        yield depth
