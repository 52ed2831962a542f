"""dramatiq actors ("<area>.<verb>") that catch projections up and deliver webhooks, plus the periodic tick.

`register(broker, get_container)` binds the actors to a broker so tests and the CLI use the
same code; `workers.dramatiq_app` is the module the dramatiq CLI imports in production."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import dramatiq
from dramatiq.middleware import Middleware

from workers.broker import CATCH_UP_ACTOR, DELIVER_ACTOR, QUEUE, WEBHOOK_QUEUE

log = logging.getLogger(__name__)


def register(broker: dramatiq.Broker, get_container: Callable[[], object]) -> dict[str, dramatiq.Actor]:
    def catch_up(position: int | None = None) -> None:
        """Fold every pending event into every projection. Safe to run on many workers at once:
        each batch is claimed by compare-and-set, so a batch is applied exactly once. A failing
        projection is isolated and recorded by the supervisor; the others go on."""
        container = get_container()
        # A nudge per commit: one whose position an earlier catch-up (any worker's, or the tick's)
        # already folded has nothing to fold (one read of the tracking rows instead of a pass over
        # every projection) and nothing to dispatch: whoever folded it dispatches after folding.
        if position is not None and container.supervisor.passed(position):
            return
        container.supervisor.catch_up()
        # With the sweep: a re-enabled webhook's pending deliveries go out now, not at the next sweep.
        dispatch_webhooks(container, deliver_actor, sweep=True)

    def deliver(webhook_id: str, delivery_id: str | None = None) -> None:
        """Send the webhook's due deliveries in order (one message per delivery created; the
        webhook's lock makes the extra ones no-ops). A failed attempt schedules its retry as a
        delayed message; the periodic sweep also picks up any retry whose message was lost."""
        retry = get_container().dispatcher.deliver(webhook_id)
        if retry is not None:
            delay_ms = max(0, int((retry - _utcnow()).total_seconds() * 1000))
            deliver_actor.send_with_options(args=(webhook_id,), delay=delay_ms)

    actor = dramatiq.actor(catch_up, actor_name=CATCH_UP_ACTOR, queue_name=QUEUE, broker=broker,
                           max_retries=5, min_backoff=200, max_backoff=10_000)
    # Failures are the dispatcher's business (backoff, budget): dramatiq retries only crashes.
    deliver_actor = dramatiq.actor(deliver, actor_name=DELIVER_ACTOR, queue_name=WEBHOOK_QUEUE, broker=broker,
                                   max_retries=3, min_backoff=1000, max_backoff=30_000, time_limit=120_000)
    return {CATCH_UP_ACTOR: actor, DELIVER_ACTOR: deliver_actor}


def dispatch_webhooks(container, deliver_actor: dramatiq.Actor, sweep: bool = False) -> int:
    """Create the deliveries the feed has for every webhook and send one message per delivery;
    with `sweep`, also one per webhook whose next delivery is due (lost or late messages)."""
    created = container.dispatcher.enqueue()
    for webhook_id, delivery_id in created:
        deliver_actor.send(webhook_id, delivery_id)
    if sweep:
        started = {w for w, _ in created}
        for webhook_id in container.dispatcher.due():
            if webhook_id not in started:
                deliver_actor.send(webhook_id)
    return len(created)


def _utcnow():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


class TickMiddleware(Middleware):
    """Runs catch-up every `interval` seconds in each worker process, so progress never depends
    on a nudge being delivered (nudges are best-effort; Redis may drop them while down)."""

    def __init__(self, get_container: Callable[[], object], interval: float, sweep_seconds: float = 15.0):
        self.get_container = get_container
        self.interval = interval
        self.sweep_seconds = sweep_seconds
        self._last_sweep = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    container = self.get_container()
                    container.supervisor.catch_up()
                    sweep = time.monotonic() - self._last_sweep >= self.sweep_seconds
                    dispatch_webhooks(container, broker.get_actor(DELIVER_ACTOR), sweep=sweep)
                    if sweep:
                        self._last_sweep = time.monotonic()
                except Exception:
                    log.exception("periodic catch-up failed; retrying on the next tick")

        self._thread = threading.Thread(target=loop, name="projection-tick", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()
