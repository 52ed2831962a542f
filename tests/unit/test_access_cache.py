"""application.log_head.LogHead and application.access_cache.AccessCache (adr/0020): the per-process
cache of the aggregates authentication and authorisation read, kept current from the event log."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError

from application.access_cache import AccessCache
from application.log_head import LogHead


@dataclass
class Note:
    id: int
    originator_id: UUID


class FakeLog:
    """The two recorder calls LogHead makes, over an in-memory list of notifications."""

    def __init__(self) -> None:
        self.notes: list[Note] = []
        self.head_reads = 0
        self.selects: list[tuple[int, int, int | None]] = []

    def append(self, *ids: UUID, gap: int = 0) -> int:
        for originator in ids:
            position = (self.notes[-1].id if self.notes else 0) + 1 + gap
            self.notes.append(Note(position, originator))
        return self.notes[-1].id

    def max_notification_id(self) -> int | None:
        self.head_reads += 1
        return self.notes[-1].id if self.notes else None

    def select_notifications(self, start, limit, stop=None, topics=(), *, inclusive_of_start=True):
        self.selects.append((start, limit, stop))
        out = [n for n in self.notes if n.id >= start and (stop is None or n.id <= stop)]
        return out[:limit]


class Store:
    """Aggregates by id with a version, loaded by the cache; counts loads."""

    def __init__(self) -> None:
        self.versions: dict[UUID, int] = {}
        self.loads = 0

    def load(self, aggregate_id: UUID):
        self.loads += 1
        if aggregate_id not in self.versions:
            raise AggregateNotFoundError(aggregate_id)
        return ("aggregate", aggregate_id, self.versions[aggregate_id])


def wired(batch: int = 500, max_gap: int = 20_000):
    log, store = FakeLog(), Store()
    head = LogHead(log, batch=batch, max_gap=max_gap)
    cache = AccessCache(store.load, maxsize=100)
    head.subscribe(cache.evict)
    return log, store, head, cache


def change(log: FakeLog, store: Store, *ids: UUID) -> None:
    """An event for each aggregate, committed (as another process would)."""
    for aggregate_id in ids:
        store.versions[aggregate_id] = store.versions.get(aggregate_id, 0) + 1
    log.append(*ids)


def test_a_hit_reads_nothing_but_the_head():
    log, store, head, cache = wired()
    a = uuid4()
    change(log, store, a)
    assert head.check() == 1
    assert cache.get(a) == ("aggregate", a, 1)
    for _ in range(5):
        assert head.check() == 1
        assert cache.get(a) == ("aggregate", a, 1)
    assert store.loads == 1
    assert log.head_reads == 6 and log.selects == []  # head unchanged: no notification read
    assert cache.hits == 5 and cache.misses == 1


def test_an_event_evicts_exactly_its_aggregate_on_the_next_check():
    log, store, head, cache = wired()
    a, b = uuid4(), uuid4()
    change(log, store, a, b)
    head.check()
    cache.get(a), cache.get(b)
    change(log, store, a)  # e.g. ApiKey.Revoked, committed by another process
    assert cache.get(a)[2] == 1  # without a check the cache cannot know yet
    assert head.check() == 3
    assert a not in cache and b in cache
    assert cache.get(a)[2] == 2
    assert cache.get(b)[2] == 1 and store.loads == 3
    assert log.selects == [(3, 500, 3)]  # the new notification, read once


def test_new_events_are_read_once_per_process_in_batches():
    log, store, head, cache = wired(batch=3)
    ids = [uuid4() for _ in range(8)]
    change(log, store, *ids)
    head.check()
    for i in ids:
        cache.get(i)
    change(log, store, *ids[:7])  # positions 9..15
    head.check()
    assert [s[0] for s in log.selects] == [9, 12, 15]
    assert all(s[2] == 15 for s in log.selects)
    assert [i for i in ids if i in cache] == ids[7:]
    head.check()
    assert len(log.selects) == 3  # nothing new: not read again


def test_gaps_in_notification_ids_are_followed():
    log, store, head, cache = wired(batch=2)
    a, b, c = uuid4(), uuid4(), uuid4()
    change(log, store, a, b, c)
    head.check()
    for i in (a, b, c):
        cache.get(i)
    store.versions[c] += 1
    log.append(c, gap=5)  # rolled-back inserts leave holes in the sequence
    head.check()
    assert c not in cache and a in cache and b in cache


def test_the_first_check_and_a_long_gap_clear_everything():
    log, store, head, cache = wired(max_gap=5)
    a = uuid4()
    change(log, store, a)
    cache.get(a)  # cached before any check
    head.check()
    assert len(cache) == 0  # the first check knows nothing of what came before
    cache.get(a)
    change(log, store, *[uuid4() for _ in range(6)])
    head.check()
    assert len(cache) == 0 and log.selects == []  # cleared instead of reading 6 notifications


def test_missing_aggregates_are_not_cached():
    log, store, head, cache = wired()
    missing = uuid4()
    for _ in range(2):
        with pytest.raises(AggregateNotFoundError):
            cache.get(missing)
    assert store.loads == 2 and len(cache) == 0
    change(log, store, missing)
    head.check()
    assert cache.get(missing)[2] == 1


def test_a_load_overtaken_by_an_event_is_handed_out_but_not_kept():
    """The race: a miss reads the store, an event for that aggregate commits, another thread's
    check evicts it (not there yet), then the miss would insert stale state for good."""
    log, store, head, cache = wired()
    a = uuid4()
    change(log, store, a)
    head.check()

    def racing_load(aggregate_id):
        state = ("aggregate", aggregate_id, store.versions[aggregate_id])  # read from the store ...
        change(log, store, aggregate_id)  # ... then an event commits and another request checks
        head.check()
        return state

    cache._load = racing_load
    assert cache.get(a)[2] == 1  # this caller's check came before the event: fine for it
    assert a not in cache  # but it is not kept
    cache._load = store.load
    assert cache.get(a)[2] == 2 and a in cache


def test_the_cache_is_bounded_lru():
    log, store, head, cache = wired()
    cache.maxsize = 3
    ids = [uuid4() for _ in range(4)]
    change(log, store, *ids)
    head.check()
    for i in ids[:3]:
        cache.get(i)
    cache.get(ids[0])  # most recently used
    cache.get(ids[3])
    assert [i in cache for i in ids] == [True, False, True, True]


def test_concurrent_gets_and_checks_stay_consistent():
    """Many threads read while events commit: every get after a check that saw an aggregate's
    latest event returns at least that version, and nothing raises."""
    log, store, head, cache = wired()
    ids = [uuid4() for _ in range(20)]
    change(log, store, *ids)
    head.check()
    lock = threading.Lock()  # the "database": commits and reads of the committed state
    errors: list[BaseException] = []
    stop = time.monotonic() + 1.5

    def writer():
        n = 0
        while time.monotonic() < stop:
            with lock:
                change(log, store, ids[n % len(ids)])
            n += 1
            time.sleep(0.0005)

    def reader(seed: int):
        try:
            n = seed
            while time.monotonic() < stop:
                aggregate_id = ids[n % len(ids)]
                with lock:
                    committed = store.versions[aggregate_id]
                head.check()
                assert cache.get(aggregate_id)[2] >= committed
                n += 7
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    original = store.load

    def locked_load(aggregate_id):
        with lock:
            return original(aggregate_id)

    cache._load = locked_load
    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.hits > 0 and len(cache) <= 20


class SlowLog(FakeLog):
    """A head read that takes time: it sees the log as it was when the read began."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.reading = threading.Event()

    def max_notification_id(self):
        value = super().max_notification_id()
        self.reading.set()
        self.gate.wait(5)
        return value


def test_concurrent_checks_share_reads_but_never_one_that_began_before_them():
    log, store = SlowLog(), Store()
    head = LogHead(log)
    cache = AccessCache(store.load)
    head.subscribe(cache.evict)
    a = uuid4()
    change(log, store, a)
    head.check()
    cache.get(a)
    log.gate.clear()
    log.reading.clear()
    results: dict[str, int] = {}
    early = threading.Thread(target=lambda: results.__setitem__("early", head.check()))
    early.start()
    assert log.reading.wait(5)  # a read is in flight; it saw head 1
    change(log, store, a)  # committed after that read began ...
    late = threading.Thread(target=lambda: results.__setitem__("late", head.check()))
    late.start()  # ... so this check must not be answered by it
    time.sleep(0.05)
    log.gate.set()
    early.join(5)
    late.join(5)
    assert results == {"early": 1, "late": 2}
    assert a not in cache and cache.get(a)[2] == 2


def test_many_concurrent_checks_need_few_reads():
    log, store = SlowLog(), Store()
    head = LogHead(log)
    change(log, store, uuid4())
    log.gate.clear()
    threads = [threading.Thread(target=head.check) for _ in range(12)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    log.gate.set()
    for t in threads:
        t.join(5)
    assert log.head_reads <= 3  # one in flight, then one for everyone who arrived meanwhile


def test_a_failed_read_is_not_an_answer():
    log, store = FakeLog(), Store()
    down = [True]

    def read():
        if down[0]:
            raise ConnectionError("database down")
        return log.max_notification_id()

    head = LogHead(log, read=read)
    change(log, store, uuid4())
    with pytest.raises(ConnectionError):
        head.check()
    assert head.position is None
    down[0] = False
    assert head.check() == 1


def test_unchanged_answers_without_a_read_that_waits_only_while_nothing_moved():
    log, store = FakeLog(), Store()
    probed: list[int | None] = []

    def probe():
        value = log.notes[-1].id if log.notes else 0
        probed.append(value)
        return value

    head = LogHead(log, probe=probe)
    change(log, store, uuid4())
    assert head.unchanged() is None  # never checked: nothing is known yet
    head.check()
    reads = log.head_reads
    assert head.unchanged() == 1 and log.head_reads == reads  # the probe, not the recorder
    change(log, store, uuid4())
    assert head.unchanged() is None  # moved: check() must read what changed
    assert head.check() == 2 and head.unchanged() == 2
    busy = LogHead(log, probe=lambda: None)  # a probe that would have to wait says so
    busy.check()
    assert busy.unchanged() is None
