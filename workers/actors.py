"""dramatiq actors ("<area>.<verb>") that catch projections up, plus the periodic tick.

`register(broker, get_container)` binds the actors to a broker so tests and the CLI use the
same code; `workers.dramatiq_app` is the module the dramatiq CLI imports in production."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import dramatiq
from dramatiq.middleware import Middleware

from workers.broker import CATCH_UP_ACTOR, QUEUE

log = logging.getLogger(__name__)


def register(broker: dramatiq.Broker, get_container: Callable[[], object]) -> dict[str, dramatiq.Actor]:
    def catch_up(position: int | None = None) -> None:
        """Fold every pending event into every projection. Safe to run on many workers at once:
        each batch is claimed by compare-and-set, so a batch is applied exactly once. A failing
        projection is isolated and recorded by the supervisor; the others go on."""
        get_container().supervisor.catch_up()

    actor = dramatiq.actor(catch_up, actor_name=CATCH_UP_ACTOR, queue_name=QUEUE, broker=broker,
                           max_retries=5, min_backoff=200, max_backoff=10_000)
    return {CATCH_UP_ACTOR: actor}


class TickMiddleware(Middleware):
    """Runs catch-up every `interval` seconds in each worker process, so progress never depends
    on a nudge being delivered (nudges are best-effort; Redis may drop them while down)."""

    def __init__(self, get_container: Callable[[], object], interval: float):
        self.get_container = get_container
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.get_container().supervisor.catch_up()
                except Exception:
                    log.exception("periodic catch-up failed; retrying on the next tick")

        self._thread = threading.Thread(target=loop, name="projection-tick", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()
