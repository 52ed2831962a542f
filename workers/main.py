"""`promptforge worker`: keeps every projection caught up outside the API process."""
from __future__ import annotations

import logging
import signal
import threading

from interfaces.settings import Settings

log = logging.getLogger(__name__)


def run_worker(processes: int = 1, threads: int = 2) -> int:
    settings = Settings()
    if settings.redis_url:
        from workers.dramatiq_worker import run_dramatiq

        return run_dramatiq(processes=processes, threads=threads)
    return run_poll_loop(settings)


def run_poll_loop(settings: Settings) -> int:
    """Without Redis: the in-process runner in the foreground, polling the log."""
    from interfaces.bootstrap import build

    container = build(settings.model_copy(update={"inprocess_projections": True}),
                      vectors=settings.vectors_enabled and bool(settings.qdrant_url))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    container.start()
    log.info("projection worker polling every %.1fs", settings.projection_poll_seconds)
    stop.wait()
    container.close()
    return 0
