"""Entry module for the dramatiq CLI (`promptforge worker` runs `dramatiq workers.dramatiq_app`)."""
from __future__ import annotations

import threading

import dramatiq

from interfaces.settings import Settings
from workers.actors import TickMiddleware, register
from workers.broker import make_broker

settings = Settings()
if not settings.redis_url:
    raise SystemExit("PROMPTFORGE_REDIS_URL must be set to run dramatiq workers")


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
        return _container


broker = make_broker(settings.redis_url)
broker.add_middleware(TickMiddleware(container, settings.projection_poll_seconds))
dramatiq.set_broker(broker)
actors = register(broker, container)
