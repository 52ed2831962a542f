"""Entry module for the dramatiq CLI (`promptforge worker` runs `dramatiq workers.dramatiq_app`).

Metrics: every worker process records into a shared prometheus multiprocess directory and one
forked exporter serves them on PROMPTFORGE_WORKER_METRICS_PORT (interfaces.observability.worker_metrics)."""
from __future__ import annotations

# Before anything imports prometheus_client: its multi-process mode is chosen at import time.
from interfaces.observability.worker_metrics import WorkerMetrics, enable_multiprocess  # isort: skip

enable_multiprocess()

import threading  # noqa: E402

import dramatiq  # noqa: E402

from interfaces.observability.logs import configure_logging  # noqa: E402
from interfaces.settings import Settings  # noqa: E402
from interfaces.startup import freeze_startup_objects  # noqa: E402
from workers.actors import TickMiddleware, register  # noqa: E402
from workers.broker import make_broker  # noqa: E402

settings = Settings()
if not settings.redis_url:
    raise SystemExit("PROMPTFORGE_REDIS_URL must be set to run dramatiq workers")
configure_logging(settings.log_level)


_lock = threading.Lock()
_container = None


def container():
    """One container per worker process, built lazily after the fork (actor and tick threads
    may ask at the same time, hence the lock)."""
    global _container
    with _lock:
        if _container is None:
            from interfaces.bootstrap import build

            # The embedded vector engine belongs to the API process; workers project vectors only
            # into a Qdrant server (adr/0005).
            _container = build(settings.model_copy(update={"inprocess_projections": False}),
                               vectors=settings.vectors_enabled and bool(settings.qdrant_url))
            freeze_startup_objects()
        return _container


broker = make_broker(settings.redis_url)
broker.add_middleware(TickMiddleware(container, settings.projection_poll_seconds))
broker.add_middleware(WorkerMetrics(settings.worker_metrics_port))
dramatiq.set_broker(broker)
actors = register(broker, container)
