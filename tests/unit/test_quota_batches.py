"""application.quota_batches with a recording save: what each creation gets when the combined save
is refused, fails, or its writer is interrupted; batches are bounded. (Both backends, for real:
tests/integration/test_quota_batches.py.)"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from application.quota_batches import QuotaBatches
from domain.base import acting
from domain.errors import LimitExceeded
from domain.prompt import Prompt
from domain.quota import PromptQuota

ORG = SimpleNamespace(id=UUID("00000000-0000-4000-8000-00000000000a"))


class Interrupted(BaseException):
    """What a worker's time limit raises in the thread it interrupts."""


class Store:
    """Saves recorded in memory: `refuse(events)` decides an IntegrityError; `fail` raises once."""

    def __init__(self, count: int = 0, plan: str = "PRO"):
        self.count, self.plan = count, plan
        self.saves: list[list[str]] = []
        self.refuse = lambda names: False
        self.fail: BaseException | None = None
        self.lock = threading.Lock()
        self.lock_held = threading.Lock()

    def quota(self, org) -> PromptQuota:
        quota = PromptQuota.open(org.id, self.plan, self.count)
        quota.collect_events()
        return quota

    def save(self, quota, *events) -> int:
        names = [e.name for e in events if isinstance(e, Prompt.Created)]
        if self.fail is not None:
            fail, self.fail = self.fail, None
            raise fail
        if self.refuse(names):
            raise IntegrityError("duplicate key value violates unique constraint")
        self.count = quota.count
        quota.collect_events()
        self.saves.append(names)
        return len(self.saves)

    @contextmanager
    def locked(self, org):
        with self.lock_held:
            yield self.quota(org)


def _batches(store: Store, max_batch: int = 64) -> QuotaBatches:
    return QuotaBatches(store.locked, store.quota, store.save, max_batch=max_batch)


def _queued(batches: QuotaBatches, store: Store, names: list[str]) -> dict[str, object]:
    """Hold the quota's lock until every creation queued, then release: outcome by name."""
    results: dict[str, object] = {}

    def create(name: str) -> None:
        with acting("user:u", f"req-{name}"):
            prompt = Prompt.create(uuid4(), ORG.id, name, "t", None, {}, [], "")
            try:
                results[name] = batches.count_and_save(ORG, prompt.id, prompt)
            except BaseException as exc:  # noqa: BLE001 - asserted per creation
                results[name] = exc

    threads = [threading.Thread(target=create, args=(n,)) for n in names]
    with store.lock_held:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            state = batches._orgs.get(ORG.id)
            if state is not None and state.writing and len(state.queue) == len(names):
                break
            time.sleep(0.002)
    for t in threads:
        t.join(10)
    return results


def test_queued_creations_are_saved_together():
    store = Store()
    results = _queued(_batches(store), store, ["a", "b", "c", "d"])
    assert [sorted(save) for save in store.saves] == [["a", "b", "c", "d"]] and store.count == 4
    assert all(isinstance(r, int) for r in results.values())


def test_a_refused_combined_save_is_redone_one_by_one_and_only_the_culprit_fails():
    store = Store()
    store.refuse = lambda names: "bad" in names
    results = _queued(_batches(store), store, ["a", "bad", "c", "d"])
    assert isinstance(results["bad"], IntegrityError)
    assert all(isinstance(results[n], int) for n in "acd")
    assert sorted(n for save in store.saves for n in save) == ["a", "c", "d"] and store.count == 3


def test_past_the_limit_only_the_late_creations_are_refused():
    store = Store(count=98, plan="FREE")  # FREE allows 100
    results = _queued(_batches(store), store, ["a", "b", "c", "d"])
    refused = [n for n, r in results.items() if isinstance(r, LimitExceeded)]
    assert len(refused) == 2 and store.count == 100


def test_a_database_error_reaches_every_creation_of_the_save():
    store = Store()
    batches = _batches(store)
    store.fail = OperationalError("server closed the connection unexpectedly")
    results = _queued(batches, store, ["a", "b", "c"])
    assert all(isinstance(r, OperationalError) for r in results.values()), results  # each as alone
    assert store.saves == [] and store.count == 0
    assert not batches._orgs  # nothing left queued


def test_an_interrupted_writer_never_lets_another_creation_pass_for_saved():
    store = Store()
    batches = _batches(store)
    store.fail = Interrupted()
    results = _queued(batches, store, ["a", "b", "c"])
    interrupted = [n for n, r in results.items() if isinstance(r, Interrupted)]
    unknown = [n for n, r in results.items() if isinstance(r, OperationalError)]
    assert (len(interrupted), len(unknown), store.saves) == (1, 2, [])
    assert not batches._orgs


def test_a_batch_is_bounded():
    store = Store()
    _queued(_batches(store, max_batch=3), store, [f"p{i}" for i in range(7)])
    assert [len(save) for save in store.saves] == [3, 3, 1] and store.count == 7


def test_a_creation_outside_a_command_is_a_programming_error():
    from eventsourcing.domain import ProgrammingError

    store = Store()
    with acting("user:u", "r"):
        prompt = Prompt.create(uuid4(), ORG.id, "x", "t", None, {}, [], "")
    with pytest.raises(ProgrammingError):
        _batches(store).count_and_save(ORG, prompt.id, prompt)
