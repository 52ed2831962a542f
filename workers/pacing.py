"""Pacing of projection catch-ups under a stream of wake-ups (adr/0026).

Each commit wakes the projections (a nudge through Redis to the workers, or the in-process
runner's wake-up). A catch-up has a fixed cost per call whatever it folds: per projection, a claim,
a read of the log, a write and a commit. Under sustained writes, one catch-up per commit spends most
of its time on that fixed cost, folding one command's events at a time. The pacer lets a process run
one catch-up at a time and, after one ends, waits `linger` seconds before starting the next: the
commits of that interval are folded together. A wake-up after a quiet period (longer than `linger`)
is served at once, so a lone write is projected as fast as before; under load the read models lag by
at most `linger` more."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class CatchUpPacer:
    def __init__(self, linger: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep):
        """`linger`: seconds between the end of a catch-up and the start of the next (0: none).
        `sleep` may return early (an Event's wait, so a stopping runner does not linger)."""
        self.linger = linger
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._ended = float("-inf")

    def delay(self) -> float:
        """Seconds to wait now before a catch-up may start (0: at once)."""
        return max(0.0, self._ended + self.linger - self._clock())

    @contextmanager
    def turn(self) -> Iterator[None]:
        """One catch-up at a time in this process, and not sooner than `linger` after the last."""
        with self._lock:
            wait = self.delay()
            if wait > 0:
                self._sleep(wait)
            try:
                yield
            finally:
                self._ended = self._clock()
