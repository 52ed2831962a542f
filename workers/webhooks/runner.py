"""The embedded default's delivery loop: a thread that creates deliveries as the change feed moves
and hands each due webhook to a small pool, one task per webhook at a time.

A dead receiver holds one pool slot for at most the timeout and only its own webhook waits
behind it (deliveries are sent in order per webhook); commands never wait on a receiver."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from workers.webhooks.dispatcher import Dispatcher

log = logging.getLogger(__name__)


class WebhookRunner:
    def __init__(self, dispatcher: Dispatcher, progress: threading.Condition | None, poll_seconds: float = 1.0,
                 concurrency: int = 8):
        """`progress`: notified when projections move (the supervisor's), so new changes go out at once."""
        self.dispatcher = dispatcher
        self.progress = progress
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self._running: dict[str, Future] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def wake(self, _position: int | None = None) -> None:
        self._wake.set()
        if self.progress is not None:
            with self.progress:
                self.progress.notify_all()

    def run_once(self) -> int:
        """Create new deliveries and start every due webhook not already being sent; returns how
        many webhooks were started."""
        try:
            self.dispatcher.enqueue()
            due = self.dispatcher.due()
        except Exception:  # e.g. the database is down: retried on the next round
            log.exception("webhook dispatch round failed")
            return 0
        started = 0
        for webhook_id in due:
            running = self._running.get(webhook_id)
            if running is not None and not running.done():
                continue
            self._running[webhook_id] = self._pool.submit(self._deliver, webhook_id)
            started += 1
        return started

    def _deliver(self, webhook_id: str) -> None:
        """No wake-up afterwards: the rounds run on the feed's progress (new deliveries come from new
        changes) and every `poll_seconds` (retries). Waking here made a webhook that another process
        is sending (or a database error) start again at once, round after round."""
        try:
            self.dispatcher.deliver(webhook_id)
        except Exception:
            log.exception("delivering webhook %s failed; retried on the next round", webhook_id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            if self.progress is not None and not self._wake.is_set():
                with self.progress:
                    self.progress.wait(self.poll_seconds)
            else:
                self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-delivery")
            self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
