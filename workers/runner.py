"""In-process projection runner: a background thread woken after each command, with a
periodic fallback so progress never depends on a wake-up being delivered. Under a stream of
wake-ups its catch-ups are paced (workers.pacing, adr/0026)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from workers.pacing import CatchUpPacer

log = logging.getLogger(__name__)


class ProjectionRunner:
    def __init__(self, job: Callable[[], int], poll_seconds: float = 1.0, name: str = "projection-runner",
                 linger: float = 0.0):
        """`job` catches projections up and returns how many events it applied (the supervisor
        isolates each projection's failures; anything escaping it is logged here). `linger`: at
        least this many seconds between the end of a catch-up and the start of the next."""
        self.job = job
        self.poll_seconds = poll_seconds
        self.name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.pacer = CatchUpPacer(linger, sleep=self._stop.wait)
        self._thread: threading.Thread | None = None

    def wake(self, _position: int | None = None) -> None:
        self._wake.set()

    def run_once(self) -> int:
        try:
            return self.job()
        except Exception:  # e.g. the read-model database is down: retried on the next tick
            log.exception("projection catch-up failed")
            return 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            with self.pacer.turn():  # the wake-ups of the linger fold together in this run
                self._wake.clear()
                if self._stop.is_set():
                    break
                self.run_once()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
