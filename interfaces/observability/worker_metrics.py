"""Prometheus metrics of the dramatiq workers (`promptforge worker` with Redis), on
`PROMPTFORGE_WORKER_METRICS_PORT` (default 9100, 0 = off).

dramatiq runs `--processes N` worker processes forked from one supervisor, so a port per process
cannot work. The sound way (the one dramatiq's own Prometheus middleware uses):

- `workers.dramatiq_app` sets `PROMETHEUS_MULTIPROC_DIR` before prometheus_client is imported, to a
  directory shared by the supervisor's children (`<tmp>/promptforge-worker-metrics-<supervisor pid>`,
  so two dramatiq invocations on one host never mix their files). Every worker process writes its
  counters/histograms (e.g. `promptforge_embedding_batch_seconds`) into it.
- `WorkerMetrics.forks` asks the supervisor to fork ONE extra process running
  `serve_worker_metrics`, which serves the aggregate (`MultiProcessCollector`) plus the scrape-time
  gauges `promptforge_worker_queue_depth{queue}` (Redis LLEN of dramatiq's queues) and the projection
  lag gauges. One port per container, whatever `--processes` is.

If the port is taken, the exporter logs and idles rather than exiting (a dying fork would take the
supervisor down with it): metrics are never a reason to stop projecting.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading

from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)


def shared_dir() -> str:
    """The multiprocess directory of this dramatiq supervisor (called in its children)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"promptforge-worker-metrics-{os.getppid()}")


def enable_multiprocess() -> str:
    """Point prometheus_client at the shared directory; call before importing prometheus_client."""
    path = shared_dir()
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def worker_registry(settings, container_factory=None):
    from prometheus_client import CollectorRegistry, multiprocess

    from interfaces.observability.metrics import ProjectionCollector, QueueDepthCollector
    from workers.broker import QUEUE

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0)
        registry.register(QueueDepthCollector(client, [QUEUE]))
    if container_factory is not None:
        registry.register(ProjectionCollector(lambda: container_factory().supervisor.status()))
    return registry


def serve_worker_metrics() -> None:
    """Fork function (runs in its own process, started by the dramatiq supervisor)."""
    import time

    from prometheus_client import start_http_server

    from interfaces.settings import Settings

    enable_multiprocess()
    settings = Settings()
    lock = threading.Lock()
    holder: dict = {}

    def container():
        with lock:
            if "c" not in holder:
                from interfaces.bootstrap import build

                holder["c"] = build(settings.model_copy(update={"inprocess_projections": False,
                                                                "db_pool_size": 2}), vectors=False)
            return holder["c"]

    try:
        start_http_server(settings.worker_metrics_port, addr="0.0.0.0",
                          registry=worker_registry(settings, container))
        log.info("worker metrics on :%d/metrics", settings.worker_metrics_port)
    except OSError as exc:
        log.warning("worker metrics not served: port %d unavailable (%s)", settings.worker_metrics_port, exc)
    while True:
        time.sleep(3600)


class WorkerMetrics(Middleware):
    """Asks the dramatiq supervisor to fork the single metrics exporter process."""

    def __init__(self, port: int):
        self.port = port

    @property
    def forks(self):
        return [serve_worker_metrics] if self.port else []
