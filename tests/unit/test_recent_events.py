"""RecentEvents (adr/0029): the projections of a catch-up round read each new batch of the log once,
and every read answers exactly what the log holds."""
from __future__ import annotations

import random
import threading

from projections.events import Envelope
from projections.source import RecentEvents


class Log:
    """A log with gaps in its positions (rolled-back transactions leave some), counting reads."""

    def __init__(self, positions):
        self.events = [Envelope(p, object()) for p in positions]
        self.reads = 0

    def append(self, *positions):
        self.events.extend(Envelope(p, object()) for p in positions)

    def read(self, after, limit):
        self.reads += 1
        return [e for e in self.events if e.position > after][:limit]

    def head(self):
        return self.events[-1].position if self.events else 0

    def open_pass(self):
        return "the log's own pass"


def test_the_projections_of_a_round_read_a_batch_once_and_get_the_same_events():
    log = Log([1, 2, 4, 7, 8])
    recent = RecentEvents(log)
    first = recent.read(0, 500)
    assert [e.position for e in first] == [1, 2, 4, 7, 8] and log.reads == 1
    for _ in range(9):  # the other projections, at the same position
        assert recent.read(0, 500) == first
    assert log.reads == 1
    assert all(a is b for a, b in zip(recent.read(0, 500), first))  # decoded once, shared


def test_a_read_answers_what_the_log_holds_from_any_position_with_any_limit():
    log = Log([1, 2, 4, 7, 8, 9, 12])
    recent = RecentEvents(log)
    recent.read(0, 500)
    for after in range(0, 13):
        for limit in (1, 2, 3, 500):
            assert recent.read(after, limit) == log.read(after, limit), (after, limit)


def test_new_events_are_read_from_the_log_and_continue_the_run():
    log = Log([1, 2, 3])
    recent = RecentEvents(log)
    recent.read(0, 500)
    assert recent.read(3, 500) == [] and log.reads == 2  # up to date: asks the log, never guesses
    log.append(5, 6)
    assert [e.position for e in recent.read(3, 500)] == [5, 6] and log.reads == 3
    reads = log.reads
    assert [e.position for e in recent.read(0, 500)] == [1, 2, 3, 5, 6]  # one run: (0, 6]
    assert [e.position for e in recent.read(2, 2)] == [3, 5]
    assert log.reads == reads


def test_a_page_short_because_the_run_ends_is_completed_from_the_log():
    """A short page means "nothing more, as of some moment" to the callers: it is given from the run
    only when the run's last read reached the head; otherwise the rest comes from the log."""
    log = Log([1, 2, 3])
    recent = RecentEvents(log)
    recent.read(0, 2)  # the run is (0, 2], and the log had more
    log.append(4)
    assert [e.position for e in recent.read(1, 500)] == [2, 3, 4] and log.reads == 2
    log.append(5)
    assert [e.position for e in recent.read(1, 500)] == [2, 3, 4]  # the run reached the head: a valid answer
    assert log.reads == 2
    assert [e.position for e in recent.read(4, 500)] == [5]  # at its end: the log again


def test_a_lagging_reader_starts_a_new_run_and_the_capacity_bounds_it():
    log = Log(range(1, 101))
    recent = RecentEvents(log, capacity=10)
    assert [e.position for e in recent.read(50, 5)] == [51, 52, 53, 54, 55]
    assert [e.position for e in recent.read(10, 3)] == [11, 12, 13] and log.reads == 2  # before the run
    for after in range(13, 40, 3):  # consecutive reads extend the run, trimmed to the last 10 events
        recent.read(after, 3)
    assert len(recent._events) == 10
    reads = log.reads
    assert recent.read(35, 2) == log.read(35, 2)  # kept
    assert log.reads == reads + 1  # (the check itself read the log once)
    assert recent.read(15, 2) == log.read(15, 2)  # trimmed: read again
    assert log.reads == reads + 3


def test_concurrent_readers_get_exactly_what_the_log_holds():
    log = Log(sorted(random.Random(3).sample(range(1, 5000), 1500)))
    recent = RecentEvents(log, capacity=300)
    truth = {(a, n): log.read(a, n) for a in range(0, 5000, 97) for n in (1, 50, 500)}
    errors = []

    def reader(seed):
        rng = random.Random(seed)
        for _ in range(300):
            key = rng.choice(list(truth))
            if recent.read(*key) != truth[key]:
                errors.append(key)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_rest_is_the_sources():
    log = Log([1, 2])
    recent = RecentEvents(log)
    assert recent.head() == 2 and recent.open_pass() == "the log's own pass"
