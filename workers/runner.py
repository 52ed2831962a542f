"""In-process projection runner: a background thread woken after each command, with a
periodic fallback so progress never depends on a wake-up being delivered."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from projections.catchup import catch_up

log = logging.getLogger(__name__)


class ProjectionRunner:
    def __init__(self, jobs: Sequence[Callable[[], int]], poll_seconds: float = 1.0, name: str = "projection-runner"):
        """`jobs` are zero-argument callables that catch one projection up and return how many
        events they applied (see `Container.catch_up_jobs`)."""
        self.jobs = list(jobs)
        self.poll_seconds = poll_seconds
        self.name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.progress = threading.Condition()

    def wake(self, _position: int | None = None) -> None:
        self._wake.set()

    def run_once(self) -> int:
        applied = 0
        for job in self.jobs:
            try:
                applied += job()
            except Exception:  # keep the other projections going; retried on the next tick
                log.exception("projection catch-up failed")
        if applied:
            with self.progress:
                self.progress.notify_all()
        return applied

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
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


__all__ = ["ProjectionRunner", "catch_up"]
