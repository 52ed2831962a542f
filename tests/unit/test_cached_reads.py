"""projections.cached_reads (adr/0020): answers kept while none of the aggregates they were computed
from changed after the read-model position they were computed at; the position read from the
tracking row."""
from __future__ import annotations

import threading
import uuid

from sqlalchemy import update

from projections import tracking
from projections.cached_reads import DependencyCache, ReadModelPosition
from projections.db import create_schema, make_engine, write

A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_an_answer_is_served_until_one_of_its_aggregates_changes_after_its_position():
    cache = DependencyCache()
    cache.put("a+b", 10, {A, B}, "composed")
    cache.put("c", 10, {C}, "plain")
    assert cache.get("a+b") == "composed" and cache.get("c") == "plain"
    cache.changed([B], 12)  # an event of B at or below 12: maybe after 10
    assert cache.get("a+b") is None  # dropped: its include changed
    assert cache.get("c") == "plain"  # a write elsewhere leaves it in place
    assert cache.get("nothing") is None
    assert (cache.hits, cache.misses) == (3, 2)


def test_changes_at_or_below_the_position_it_was_computed_at_are_in_it():
    cache = DependencyCache()
    cache.changed([A], 10)
    cache.put("a", 10, {A}, "at 10")
    assert cache.get("a") == "at 10"
    cache.put("old", 9, {A}, "at 9")  # computed before A's latest known change: never kept
    assert cache.get("old") is None


def test_forget_everything_raises_the_floor():
    cache = DependencyCache()
    cache.put("a", 10, {A}, "a")
    cache.changed(None, 20)  # the first check of a process, or a gap too long to read
    assert cache.get("a") is None
    cache.put("a", 20, {A}, "a at 20")
    assert cache.get("a") == "a at 20"


def test_forgetting_tracked_aggregates_only_ever_drops_answers_early():
    cache = DependencyCache(max_tracked=2)
    cache.put("c", 5, {C}, "c")
    cache.changed([A], 6)
    cache.changed([B], 7)
    assert cache.get("c") == "c"
    cache.changed([uuid.uuid4()], 8)  # A is forgotten: the floor rises to 6
    assert cache.get("c") is None  # computed at 5 < 6: C might have changed at 6 as far as we know


def test_bounded_least_recently_used():
    cache = DependencyCache(maxsize=2)
    cache.put("a", 1, {A}, "a")
    cache.put("b", 1, {B}, "b")
    cache.get("a")
    cache.put("c", 1, {C}, "c")
    assert cache.get("a") == "a" and cache.get("b") is None and cache.get("c") == "c"


def test_concurrent_gets_puts_and_changes():
    cache = DependencyCache(maxsize=50, max_tracked=20)
    ids = [uuid.uuid4() for _ in range(40)]
    errors: list[BaseException] = []
    head = [0]

    def reader(seed: int):
        try:
            for i in range(2000):
                key = (seed * 31 + i) % 80
                if cache.get(key) is None:
                    cache.put(key, head[0], {ids[key % 40]}, key)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    def writer():
        for i in range(500):
            head[0] += 1
            cache.changed([ids[i % 40]], head[0])

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) <= 50


def test_the_position_is_read_from_the_tracking_row(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/rm.db")
    create_schema(engine)
    tracking.ensure(engine, "catalogue")
    positions = ReadModelPosition(engine, "catalogue")
    assert positions.read() == 0
    with write(engine) as conn:
        conn.execute(update(tracking.tracking).where(tracking.tracking.c.name == "catalogue").values(position=5))
    assert positions.read() == 5
    engine.dispose()
