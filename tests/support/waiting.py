"""Test helpers for things that happen in the background: a condition to wait for, and an app served
by a real uvicorn server in a thread (SSE, the real SDKs and HTTP clients need a socket)."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


def until(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, message: str = "condition") -> T:
    """The first truthy value of `predicate()`, polled every `interval` seconds; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {message}; last: {value!r}")
        time.sleep(interval)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` on a free local port, served by uvicorn in a thread (lifespan on); yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
