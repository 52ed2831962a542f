"""Pacing of projection catch-ups (workers.pacing, adr/0026): a lone wake-up is served at once; under
a stream of them, catch-ups run one at a time, `linger` apart, folding what came meanwhile."""
from __future__ import annotations

import threading
import time

from workers.pacing import CatchUpPacer
from workers.runner import ProjectionRunner


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_the_first_catch_up_and_one_after_a_quiet_period_start_at_once():
    clock = FakeClock()
    pacer = CatchUpPacer(0.02, clock=clock, sleep=clock.sleep)
    with pacer.turn():
        clock.now += 0.005  # the catch-up's own time
    clock.now += 0.5  # quiet
    with pacer.turn():
        pass
    assert clock.slept == []


def test_a_catch_up_right_after_another_waits_the_linger_from_its_end():
    clock = FakeClock()
    pacer = CatchUpPacer(0.02, clock=clock, sleep=clock.sleep)
    with pacer.turn():
        clock.now += 0.005
    clock.now += 0.004  # a nudge 4 ms after the end
    with pacer.turn():
        pass
    assert clock.slept == [0.016]


def test_no_linger_never_waits():
    clock = FakeClock()
    pacer = CatchUpPacer(0.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        with pacer.turn():
            pass
    assert clock.slept == []


def test_a_failed_catch_up_still_counts_as_ended():
    clock = FakeClock()
    pacer = CatchUpPacer(0.02, clock=clock, sleep=clock.sleep)
    try:
        with pacer.turn():
            raise RuntimeError("database down")
    except RuntimeError:
        pass
    with pacer.turn():
        pass
    assert clock.slept == [0.02]


def test_turns_are_exclusive_across_threads():
    pacer = CatchUpPacer(0.0)
    inside, most = [0], [0]
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            with pacer.turn():
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.0005)
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


def test_a_runner_under_a_stream_of_wake_ups_folds_them_in_fewer_catch_ups():
    """200 wake-ups 1 ms apart: with a 50 ms linger the job runs a handful of times, not 200, and
    the last wake-up is still served (nothing is left unfolded)."""
    woken, folded, runs = [0], [0], [0]

    def job() -> int:
        runs[0] += 1
        n, folded[0] = woken[0] - folded[0], woken[0]
        return n

    runner = ProjectionRunner(job, poll_seconds=30, linger=0.05)
    runner.start()
    try:
        for _ in range(200):
            woken[0] += 1
            runner.wake()
            time.sleep(0.001)
        deadline = time.monotonic() + 5
        while folded[0] < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        runner.stop()
    assert folded[0] == 200
    assert runs[0] <= 200 * 0.0015 / 0.05 + 5, runs[0]  # the stream lasts ≥ 0.2 s: about one run per 50 ms


def test_a_stopping_runner_does_not_wait_out_its_linger():
    runner = ProjectionRunner(lambda: 0, poll_seconds=30, linger=10.0)
    runner.start()
    runner.wake()
    time.sleep(0.05)
    runner.wake()  # now lingering for 10 s
    time.sleep(0.05)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 5
