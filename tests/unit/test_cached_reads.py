"""projections.cached_reads (adr/0020): answers kept while the read model stays at the position they
were computed at, and the read model's position read only when the log head says it may have moved."""
from __future__ import annotations

import threading

from sqlalchemy import update

from projections import tracking
from projections.cached_reads import PositionCache, ReadModelPosition
from projections.db import create_schema, make_engine, write


def test_an_entry_answers_only_at_its_position():
    cache = PositionCache()
    cache.put("k", 7, "seven")
    assert cache.get("k", 7) == "seven"
    assert cache.get("k", 8) is None and cache.get("k", 6) is None
    assert cache.get("other", 7) is None
    assert (cache.hits, cache.misses) == (1, 3)


def test_a_new_position_drops_every_older_entry():
    """Whole-cache invalidation: includes make one prompt's answer depend on others, and any event
    the read model folds may be one of them."""
    cache = PositionCache()
    cache.put("a", 7, 1)
    cache.put("b", 7, 2)
    cache.put("c", 8, 3)
    assert len(cache) == 1 and cache.get("c", 8) == 3
    assert cache.get("a", 7) is None


def test_bounded_least_recently_used():
    cache = PositionCache(maxsize=2)
    cache.put("a", 1, "a")
    cache.put("b", 1, "b")
    cache.get("a", 1)
    cache.put("c", 1, "c")
    assert cache.get("a", 1) == "a" and cache.get("b", 1) is None and cache.get("c", 1) == "c"


def test_concurrent_gets_and_puts():
    cache = PositionCache(maxsize=50)
    errors: list[BaseException] = []

    def work(seed: int):
        try:
            for i in range(2000):
                position = (i // 500) + 1
                key = (seed * 31 + i) % 80
                value = cache.get(key, position)
                if value is None:
                    cache.put(key, position, (key, position))
                else:
                    assert value == (key, position)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) <= 50


def test_the_position_is_read_only_when_the_head_may_have_moved(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/rm.db")
    create_schema(engine)
    tracking.ensure(engine, "catalogue")
    positions = ReadModelPosition(engine, "catalogue")
    assert positions.known(None) is None and positions.known(0) is None  # nothing read yet
    assert positions.read() == 0

    def move(to: int) -> None:
        with write(engine) as conn:
            conn.execute(update(tracking.tracking).where(tracking.tracking.c.name == "catalogue").values(position=to))

    move(5)
    assert positions.known(0) == 0  # head 0 unchanged: the read model cannot have moved
    assert positions.known(5) is None  # the head moved: read it
    assert positions.read() == 5 and positions.known(5) == 5
    move(6)
    assert positions.known(7) is None and positions.read() == 6
    assert positions.known(7) is None  # lagging behind the head: read again next time
    assert positions.known(None) is None
    engine.dispose()
