"""In-process projection runner: a background thread woken after each command, with a
periodic fallback so progress never depends on a wake-up being delivered."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class ProjectionRunner:
    def __init__(self, job: Callable[[], int], poll_seconds: float = 1.0, name: str = "projection-runner"):
        """`job` catches projections up and returns how many events it applied (the supervisor
        isolates each projection's failures; anything escaping it is logged here)."""
        self.job = job
        self.poll_seconds = poll_seconds
        self.name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
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
