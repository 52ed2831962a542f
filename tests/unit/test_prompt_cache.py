"""application.prompt_cache: entries dropped by later events, offers refused after them."""
from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

from application.prompt_cache import PromptCache


def _prompt():
    return SimpleNamespace(id=uuid4(), pending_events=[])


def test_take_hands_the_saved_object_once():
    cache, p = PromptCache(), _prompt()
    cache.offer(p, 5)
    assert cache.take(p.id) is p
    assert cache.take(p.id) is None


def test_a_later_event_drops_the_entry_and_its_own_event_does_not():
    cache, p, q = PromptCache(), _prompt(), _prompt()
    cache.offer(p, 5)
    cache.offer(q, 6)
    cache.changed({p.id: 5, q.id: 7}, 7)  # p's own save; q changed after its save
    assert cache.take(p.id) is p
    assert cache.take(q.id) is None


def test_an_offer_after_the_listener_saw_a_later_event_is_refused():
    cache, p = PromptCache(), _prompt()
    cache.changed({p.id: 9}, 9)
    cache.offer(p, 5)
    assert cache.take(p.id) is None
    cache.offer(p, 9)
    assert cache.take(p.id) is p


def test_forgetting_everything_and_forgetting_tracked_ids():
    cache, p = PromptCache(max_tracked=2), _prompt()
    cache.offer(p, 5)
    cache.changed(None, 8)
    assert cache.take(p.id) is None
    cache.offer(p, 7)  # below the floor: an event of it may have been told and forgotten
    assert cache.take(p.id) is None
    cache.changed({uuid4(): 10, uuid4(): 11, uuid4(): 12}, 12)  # the first forgotten: floor 10
    cache.offer(p, 9)
    assert cache.take(p.id) is None
    cache.offer(p, 12)
    assert cache.take(p.id) is p


def test_ids_without_positions_count_at_the_head():
    cache, p = PromptCache(), _prompt()
    cache.offer(p, 5)
    cache.changed([p.id], 6)
    assert cache.take(p.id) is None
