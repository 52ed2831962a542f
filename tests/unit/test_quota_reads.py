"""application.quota_reads in memory: a kept quota is handed to one holder at a time, brought up to
date with what the lock read (or one read of its stream), and never trusted half-applied.
(Both backends and two processes, for real: tests/integration/test_quota_reads.py.)"""
from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace
from uuid import UUID, uuid4

from eventsourcing.application import Application

from application.quota_reads import QuotaReads, quota_lock_key
from domain.base import acting
from domain.quota import PromptQuota

ORG = SimpleNamespace(id=UUID("00000000-0000-4000-8000-00000000000b"), plan="PRO", prompt_count=0)


class Store:
    """An eventsourcing application in memory; the lock records its keys and yields `lock_read`."""

    def __init__(self) -> None:
        self.app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.held: list[tuple[str, object]] = []
        self.lock_read: list | None = None
        self.stream_reads = 0

    @contextmanager
    def hold(self, key, read_after=None):
        self.held.append((key, read_after))
        yield self.lock_read

    def load(self, org) -> PromptQuota:
        try:
            return self.app.repository.get(PromptQuota.id_for(org.id))
        except Exception:
            with acting("user:u", "r"):
                return PromptQuota.open(org.id, org.plan, org.prompt_count)

    def events_after(self, stream, version):
        self.stream_reads += 1
        return self.app.recorder.select_events(stream, gt=version)

    def reads(self, **kwargs) -> QuotaReads:
        return QuotaReads(self.hold, self.load, self.events_after, self.app.mapper.to_domain_event, **kwargs)

    def count(self, quota: PromptQuota, n: int = 1) -> None:
        with acting("user:u", "r"):
            for _ in range(n):
                quota.count_prompt(uuid4())
        self.app.save(quota)


def _counted_and_kept(store: Store, reads: QuotaReads, org=ORG, n: int = 1) -> PromptQuota:
    """A writer's turn: the quota under its lock, `n` counts saved, the quota kept."""
    with reads.locked(org) as quota:
        store.count(quota, n)
        reads.keep(quota)
    return quota


def test_the_first_holder_loads_and_the_next_fast_forwards_what_others_saved():
    store = Store()
    reads = store.reads()
    _counted_and_kept(store, reads)
    other = store.load(ORG)  # another process counts twice meanwhile
    store.count(other, 2)
    with reads.locked(ORG) as quota:
        assert quota.count == 3 and quota.version == other.version
    assert (reads.loads, reads.fast_forwards, store.stream_reads) == (1, 1, 1)
    assert store.held == [(quota_lock_key(ORG.id), None), (quota_lock_key(ORG.id), (quota.id, 2))]


def test_what_the_lock_read_is_used_instead_of_a_read_of_the_stream():
    store = Store()
    reads = store.reads()
    quota = _counted_and_kept(store, reads)
    other = store.load(ORG)
    store.count(other)
    store.lock_read = list(store.app.recorder.select_events(quota.id, gt=quota.version))
    with reads.locked(ORG) as current:
        assert current.count == 2
    assert store.stream_reads == 0


def test_a_kept_quota_is_taken_out_while_held_and_a_failed_save_keeps_nothing():
    store = Store()
    reads = store.reads()
    _counted_and_kept(store, reads)
    with reads.locked(ORG) as first:
        with reads.locked(ORG) as second:  # (a re-entered lock, say): never the same object
            assert second is not first
        # the save failed: not kept
    with reads.locked(ORG):
        pass
    assert reads.loads == 3 and reads.fast_forwards == 1


def test_an_event_that_does_not_follow_the_kept_version_loads_instead():
    store = Store()
    reads = store.reads()
    quota = _counted_and_kept(store, reads, n=2)
    store.lock_read = list(store.app.recorder.select_events(quota.id, gt=1))  # one the kept quota already has
    with reads.locked(ORG) as current:
        assert current.count == 2 and current is not quota
    assert (reads.loads, reads.fast_forwards) == (2, 0)


def test_the_oldest_kept_quota_goes_first_past_the_size():
    store = Store()
    reads = store.reads(maxsize=2)
    orgs = [SimpleNamespace(id=uuid4(), plan="PRO", prompt_count=0) for _ in range(3)]
    for org in orgs:
        _counted_and_kept(store, reads, org)
    assert list(reads._kept) == [orgs[1].id, orgs[2].id]
