"""application.coalesce.SaveCoalescer with a recorder stand-in: concurrent saves are combined into
fewer inserts, every save's events are committed exactly once with its own ids, and one save's
conflict never fails another."""
from __future__ import annotations

import threading
import time

import pytest
from eventsourcing.persistence import DataError, IntegrityError, OperationalError

from application.coalesce import SaveCoalescer


class Recorder:
    """An insert that takes a while (so saves queue behind it), commits all or nothing, refuses a
    batch holding a "bad" event or an event whose key was committed before (a version conflict)."""

    def __init__(self, delay: float = 0.005, fail_with: type[BaseException] | None = None):
        self.delay, self.fail_with = delay, fail_with
        self.committed: list[str] = []
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def insert_events(self, events, **kwargs):
        time.sleep(self.delay)
        with self._lock:
            self.calls.append(len(events))
            if self.fail_with is not None:
                raise self.fail_with("down")
            if any(e.startswith("bad") or e in self.committed for e in events) or len(set(events)) < len(events):
                raise IntegrityError("conflict")
            start = len(self.committed)
            self.committed.extend(events)
            return list(range(start + 1, start + 1 + len(events)))


def _run(coalescer, saves: dict[str, list[str]]) -> dict[str, object]:
    out: dict[str, object] = {}
    barrier = threading.Barrier(len(saves))

    def work(name: str) -> None:
        barrier.wait()
        try:
            out[name] = coalescer(saves[name])
        except BaseException as exc:  # noqa: BLE001 - asserted below
            out[name] = exc

    threads = [threading.Thread(target=work, args=(n,)) for n in saves]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_concurrent_saves_are_combined_and_each_committed_once():
    recorder = Recorder()
    coalescer = SaveCoalescer(recorder.insert_events)
    saves = {f"s{i}": [f"s{i}-e{j}" for j in range(1 + i % 3)] for i in range(32)}
    out = _run(coalescer, saves)
    assert sorted(recorder.committed) == sorted(e for events in saves.values() for e in events)
    for name, events in saves.items():
        ids = out[name]
        assert [recorder.committed[i - 1] for i in ids] == events  # its own events, its order, contiguous
        assert ids == list(range(ids[0], ids[0] + len(events)))
    assert coalescer.saves == 32 and coalescer.transactions < 32 and len(recorder.calls) == coalescer.transactions


def test_one_conflicting_save_does_not_fail_the_others():
    recorder = Recorder()
    recorder.committed.append("taken")
    coalescer = SaveCoalescer(recorder.insert_events)
    saves = {f"s{i}": [f"s{i}-a", f"s{i}-b"] for i in range(12)}
    saves["bad"] = ["bad-1"]
    saves["stale"] = ["x-1", "taken"]  # a version someone committed before
    saves["twin1"], saves["twin2"] = ["same"], ["same"]  # two saves of one aggregate version: one wins
    out = _run(coalescer, saves)
    assert isinstance(out["bad"], IntegrityError) and isinstance(out["stale"], IntegrityError)
    assert sorted(type(out[t]).__name__ for t in ("twin1", "twin2")) == ["IntegrityError", "list"]
    for i in range(12):
        assert [recorder.committed[n - 1] for n in out[f"s{i}"]] == saves[f"s{i}"]
    assert recorder.committed.count("same") == 1 and "x-1" not in recorder.committed
    assert len(recorder.committed) == len(set(recorder.committed)) == 1 + 24 + 1


def test_a_value_the_database_refuses_fails_only_its_save():
    class Picky(Recorder):
        def insert_events(self, events, **kwargs):
            if any(e.startswith("nul") for e in events):
                time.sleep(self.delay)
                raise DataError("invalid byte sequence")
            return super().insert_events(events, **kwargs)

    recorder = Picky()
    coalescer = SaveCoalescer(recorder.insert_events)
    saves = {f"s{i}": [f"s{i}"] for i in range(10)} | {"nul": ["nul\x00"]}
    out = _run(coalescer, saves)
    assert isinstance(out["nul"], DataError)
    assert all(out[f"s{i}"] == [recorder.committed.index(f"s{i}") + 1] for i in range(10))


def test_a_connection_failure_reaches_every_save_of_the_insert():
    recorder = Recorder(fail_with=OperationalError)
    coalescer = SaveCoalescer(recorder.insert_events)
    out = _run(coalescer, {f"s{i}": [f"s{i}"] for i in range(8)})
    assert all(isinstance(v, OperationalError) for v in out.values())
    assert recorder.committed == []


def test_calls_with_other_arguments_go_straight_to_the_recorder():
    seen = []
    coalescer = SaveCoalescer(lambda events, **kw: seen.append(kw) or [1])
    assert coalescer(["e"], tracking="t") == [1] and seen == [{"tracking": "t"}]
    assert coalescer.transactions == 0
    assert coalescer(["e"], tracking=None) == [1] and seen[-1] == {}  # what the event store passes: combined
    assert coalescer.transactions == 1


def test_a_batch_is_bounded():
    recorder = Recorder(delay=0.01)
    coalescer = SaveCoalescer(recorder.insert_events, max_events=5)
    out = _run(coalescer, {f"s{i}": [f"s{i}-a", f"s{i}-b"] for i in range(10)})
    assert all(isinstance(v, list) for v in out.values())
    assert max(recorder.calls) <= 5 and sum(recorder.calls) == 20


class Interrupt(BaseException):
    """Like dramatiq's time limit: raised in the writing thread, not an error of the insert."""


def test_an_interrupted_writer_never_lets_another_save_pass_for_written():
    recorder = Recorder(fail_with=Interrupt)
    coalescer = SaveCoalescer(recorder.insert_events)
    out = _run(coalescer, {f"s{i}": [f"s{i}-e"] for i in range(8)})
    assert len(out) == 8
    assert not any(isinstance(result, list) for result in out.values()), out  # nobody told "saved"
    assert all(isinstance(result, (Interrupt, OperationalError)) for result in out.values()), out
    assert any(isinstance(result, OperationalError) for result in out.values())  # others' saves in a batch
    assert coalescer._queue == []
