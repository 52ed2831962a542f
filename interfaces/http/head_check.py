"""The log-head check of requests answered on the event loop (adr/0020), shared between them.

`application.log_head.LogHead.check()` blocks (one indexed read): awaited through the thread pool
it would cost every request a thread hop, and those hops (threads contending for the GIL with the
event loop) were most of the hot path's tail latency. Here a request waits for the first read that
*starts* after it arrived (so it sees every commit made before it began), and every request waiting
at that moment shares that read: one hop per batch of concurrent requests.

Where the store can be read on the event loop (Postgres: `probe`, an async read of the head), the
shared read is that probe: when it finds the head where the last check left it (`position`), the
caches are current and no thread is involved at all; only when the log moved does the read go on to
`check` in the thread pool (the caches then hear of the new events).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool


class HeadCheck:
    def __init__(self, check: Callable[[], int], unchanged: Callable[[], int | None] | None = None, *,
                 probe: Callable[[], Awaitable[int | None]] | None = None,
                 position: Callable[[], int | None] | None = None):
        """`check`: LogHead.check (may wait); `unchanged`: LogHead.unchanged (never waits: answers
        on the event loop while the log has not moved, where the store allows it); `probe`: an
        async read of the head (None when it failed), compared with `position` (LogHead.position)."""
        self._check = check
        self._unchanged = unchanged
        self._probe = probe
        self._position = position
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
            head = await self._probed()
            if head is None:
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

    def close(self) -> None:
        """Close the probe's connection (the app's shutdown)."""
        close = getattr(self._probe, "close", None)
        if close is not None:
            close()

    async def _probed(self) -> int | None:
        """The head read on the loop when it is where the last check left it, else None."""
        if self._probe is None or self._position is None:
            return None
        known = self._position()
        if known is None:
            return None
        head = await self._probe()
        return head if head == known else None
