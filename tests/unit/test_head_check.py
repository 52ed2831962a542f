"""interfaces.http.head_check: the log-head check of requests answered on the event loop (adr/0020).
A request is answered by a read that started after it arrived; the requests waiting at one moment
share a read; with an async probe, the thread pool is used only when the log moved."""
from __future__ import annotations

import asyncio
import threading

from interfaces.http.head_check import HeadCheck


class FakeLog:
    """A head that tests move, a `check` that counts its calls (and their threads), a probe."""

    def __init__(self, head: int = 5):
        self.head = head
        self.position: int | None = None  # what listeners were last told (LogHead.position)
        self.checks: list[str] = []
        self.probes = 0
        self.probe_fails = False

    def check(self) -> int:
        self.checks.append(threading.current_thread().name)
        self.position = self.head
        return self.head

    async def probe(self) -> int | None:
        self.probes += 1
        await asyncio.sleep(0)
        return None if self.probe_fails else self.head


def _probing(log: FakeLog) -> HeadCheck:
    return HeadCheck(log.check, probe=log.probe, position=lambda: log.position)


def test_an_unmoved_log_is_answered_by_the_probe_without_the_thread_pool():
    log = FakeLog()
    heads = _probing(log)

    async def scenario():
        assert await heads.check() == 5  # first check: nothing known yet, the checked path
        assert len(log.checks) == 1
        assert [await heads.check() for _ in range(3)] == [5, 5, 5]
        assert len(log.checks) == 1 and log.probes == 3

    asyncio.run(scenario())


def test_a_moved_log_goes_through_check_so_the_caches_hear_of_it():
    log = FakeLog()
    heads = _probing(log)

    async def scenario():
        await heads.check()
        log.head = 9
        assert await heads.check() == 9
        assert len(log.checks) == 2 and log.position == 9
        assert log.checks[-1] != threading.current_thread().name  # in the thread pool

    asyncio.run(scenario())


def test_a_failed_probe_falls_back_to_the_checked_path():
    log = FakeLog()
    heads = _probing(log)

    async def scenario():
        await heads.check()
        log.probe_fails = True
        assert await heads.check() == 5
        assert len(log.checks) == 2

    asyncio.run(scenario())


def test_concurrent_requests_share_reads_each_starting_after_they_arrived():
    log = FakeLog()
    heads = _probing(log)

    async def scenario():
        await heads.check()
        log.probes = 0
        answers = await asyncio.gather(*(heads.check() for _ in range(50)))
        assert answers == [5] * 50
        # the first request's read, then one read shared by the 49 that arrived while it ran
        assert log.probes == 2

    asyncio.run(scenario())
