"""The log-head check of requests answered on the event loop (adr/0020), shared between them.

`application.log_head.LogHead.check()` blocks (one indexed read): awaited through the thread pool
it would cost every request a thread hop, and those hops (threads contending for the GIL with the
event loop) were most of the hot path's tail latency. Here a request waits for the first read that
*starts* after it arrived (so it sees every commit made before it began), and every request waiting
at that moment shares that read: one hop per batch of concurrent requests.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool


class HeadCheck:
    def __init__(self, check: Callable[[], int], unchanged: Callable[[], int | None] | None = None):
        """`check`: LogHead.check (may wait); `unchanged`: LogHead.unchanged (never waits: answers
        on the event loop while the log has not moved, where the store allows it)."""
        self._check = check
        self._unchanged = unchanged
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: asyncio.Future | None = None  # the read in flight (began before newcomers)
        self._next: asyncio.Future | None = None  # the read that starts when it ends
        self._task: asyncio.Task | None = None

    async def check(self) -> int:
        if self._unchanged is not None:
            head = self._unchanged()
            if head is not None:
                return head
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): nothing in flight on it
            self._loop, self._running, self._next = loop, None, None
        if self._running is None:
            self._running = loop.create_future()
            self._start()
            waited = self._running
        else:
            if self._next is None:
                self._next = loop.create_future()
            waited = self._next
        return await asyncio.shield(waited)  # one waiter cancelled must not cancel the others' read

    def _start(self) -> None:
        self._task = self._loop.create_task(self._read(self._running))

    async def _read(self, answer: asyncio.Future) -> None:
        try:
            head = await run_in_threadpool(self._check)
        except BaseException as exc:  # every waiter of this read gets the error
            if not answer.done():
                answer.set_exception(exc)
                answer.exception()  # retrieved here too: no "never retrieved" warning without waiters
        else:
            if not answer.done():
                answer.set_result(head)
        finally:
            self._running, self._next = self._next, None
            if self._running is not None:
                self._start()
