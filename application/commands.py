"""`@command`: what every command method shares, in one place.

A command method loads aggregates, decides, and saves once. The decorator:
- runs it inside `domain.base.acting(actor, request_id)`, so every event it triggers carries the
  acting principal and the request id as metadata (the method's `principal` and `request_id`
  arguments; commands without a principal, like registration, open their own `acting` block);
- re-runs it when a concurrent save won the race on one of its aggregates (the event store's
  IntegrityError), with jittered exponential backoff (tenacity): a retry reloads every aggregate,
  so a stale revision then fails with the domain's own conflict error, while an unrelated race
  succeeds on a later attempt; after `MAX_ATTEMPTS` the caller gets 409 `CONCURRENT_MODIFICATION`;
- tells the command whether it runs again after such a race (`retrying()`): a command may leave a
  check to its save on the first attempt (the save refuses what the check would have) and make it
  on a retry, where its error is the answer (create_prompt's name, adr/0031);
- reports each call's outcome to the application's `command_observer` (metrics), once per call;
- tells the application's commit listeners (projection wake-ups, nudges) about its commits when it
  ends, after its lock is released (`BaseApp.commit_notices_deferred`).
"""
from __future__ import annotations

import functools
import inspect
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from contextvars import ContextVar
from typing import Any, TypeVar

from eventsourcing.persistence import IntegrityError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from domain.base import acting
from domain.errors import Conflict

F = TypeVar("F", bound=Callable[..., Any])
MAX_ATTEMPTS = 30
#: Observer signature: (command name, exception or None, seconds).
CommandObserver = Callable[[str, BaseException | None, float], None]
#: The running command's attempt: 1, then 2 for every re-run after a concurrent save won.
_attempt: ContextVar[int] = ContextVar("command_attempt", default=1)


def retrying() -> bool:
    """Whether the running command is a re-run after a concurrent save won the race (the event
    store's IntegrityError on its first attempt)."""
    return _attempt.get() > 1


def _attempt_number(number: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    token = _attempt.set(number)
    try:
        return fn(*args, **kwargs)
    finally:
        _attempt.reset(token)


def _too_much_contention(_state: Any) -> Any:
    raise Conflict("too much contention, try again", code="CONCURRENT_MODIFICATION")


#: The backoff after attempt n is uniform(0, min(MAX_WAIT, WAIT_MULTIPLIER * 2 ** (n - 1))) seconds.
WAIT_MULTIPLIER = 0.001
MAX_WAIT = 0.05


def _retry(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Attempts 2..MAX_ATTEMPTS, after the first one failed on an IntegrityError: the backoff that
    follows attempt 1, then tenacity with the multiplier doubled, so that its k-th attempt (overall
    attempt k + 1) waits exactly what attempt k + 1 always waited."""
    time.sleep(random.uniform(0, min(MAX_WAIT, WAIT_MULTIPLIER)))
    retrying = Retrying(
        retry=retry_if_exception_type(IntegrityError), stop=stop_after_attempt(MAX_ATTEMPTS - 1),
        wait=wait_random_exponential(multiplier=2 * WAIT_MULTIPLIER, max=MAX_WAIT),
        retry_error_callback=_too_much_contention,
    )
    return retrying(_attempt_number, 2, fn, *args, **kwargs)


def command(fn: F | None = None, *, serialise: str | None = None) -> Any:
    """Mark an application method as a command (see module docstring). `serialise="org_id"` makes
    concurrent calls with the same value of that argument queue on the application's
    `command_locks` (application.serialise) instead of colliding in the event store."""
    if fn is None:
        return functools.partial(command, serialise=serialise)
    signature = inspect.signature(fn)
    name = fn.__name__

    @functools.wraps(fn)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs).arguments
        principal = bound.get("principal")
        metadata = acting(principal.actor, bound.get("request_id", "")) if principal is not None else nullcontext()
        started = time.perf_counter()
        error: BaseException | None = None
        key = bound.get(serialise) if serialise else None
        locks = getattr(self, "command_locks", None) if key is not None else None
        deferred = getattr(self, "commit_notices_deferred", None)
        try:  # commit listeners are told after the command, its lock released (BaseApp.commit_notices_deferred)
            with deferred() if deferred is not None else nullcontext(), metadata, \
                    locks.hold(f"{serialise}:{key}") if locks is not None else nullcontext():
                try:  # the first attempt directly: the retry machinery only once a concurrent save won
                    return _attempt_number(1, fn, self, *args, **kwargs)
                except IntegrityError:
                    pass
                return _retry(fn, self, *args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            observer: CommandObserver | None = getattr(self, "command_observer", None)
            if observer is not None:
                observer(name, error, time.perf_counter() - started)

    run.__command__ = name  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


def command_names(cls: type) -> list[str]:
    """The commands an application class declares (methods decorated with `@command`)."""
    return sorted(n for n, f in inspect.getmembers(cls, inspect.isfunction) if getattr(f, "__command__", None))
