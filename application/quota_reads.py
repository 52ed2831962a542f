"""The prompt quota as its lock is granted, without a read of its own under the lock (adr/0031).

Prompt creations in one organisation queue on its quota's lock (adr/0025), so what happens while it
is held decides how fast they go and how long the last of them waits. Loading the quota there was a
read of the event store (a connection from the pool, a round trip, a deep copy from the aggregate
cache): about a quarter of the time the lock was held. Now the process keeps the quota it saved
last for each organisation, and the read of what others saved since rides with the lock: on
Postgres it is pipelined behind `pg_advisory_lock` (interfaces.command_locks), so the lock and the
quota's newer events come back in one round trip; without a cross-process lock (SQLite) the kept
quota is fast-forwarded with one read of its stream.

A kept quota is used by one writer at a time (taken out while used) and kept again only after a
save that carried it succeeded; after a failed save, or when nothing is kept, the quota is loaded as
before. The event store's optimistic concurrency stays the guarantee: a quota that missed an event
would be refused at its stream version and the creations counted again from a fresh load.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.application import project_aggregate
from eventsourcing.persistence import StoredEvent

from domain.organisation import Organisation
from domain.quota import PromptQuota

log = logging.getLogger(__name__)


def quota_lock_key(org_id: UUID) -> str:
    """The key of an organisation's quota lock (the same in every process and release)."""
    return f"prompt_quota:{org_id}"


class QuotaReads:
    def __init__(self, hold: Callable[..., Any], load: Callable[[Organisation], PromptQuota],
                 events_after: Callable[[UUID, int], Sequence[StoredEvent]],
                 to_event: Callable[[StoredEvent], Any], maxsize: int = 1024):
        """`hold(key, read_after=...)`: the commands' locks (application.serialise.KeyedLocks);
        `load(org)`: the quota loaded from the store (or opened); `events_after(stream, version)`:
        one read of a stream; `to_event`: the application's mapper."""
        self._hold = hold
        self._load = load
        self._events_after = events_after
        self._to_event = to_event
        self._maxsize = maxsize
        self._kept: dict[UUID, PromptQuota] = {}
        self._guard = threading.Lock()
        #: How many times a kept quota was fast-forwarded, and how many loads there were (tests, benchmarks).
        self.fast_forwards = 0
        self.loads = 0

    @contextmanager
    def locked(self, org: Organisation) -> Iterator[PromptQuota]:
        """Hold the quota's lock; yields the quota as of the grant, for this holder only."""
        with self._guard:
            kept = self._kept.pop(org.id, None)
        read_after = (kept.id, kept.version) if kept is not None else None
        with self._hold(quota_lock_key(org.id), read_after=read_after) as newer:
            yield self._current(org, kept, newer)

    def _current(self, org: Organisation, kept: PromptQuota | None,
                 newer: Sequence[StoredEvent] | None) -> PromptQuota:
        if kept is not None:
            try:
                if newer is None:  # the lock read nothing (no cross-process lock): one read of the stream
                    newer = self._events_after(kept.id, kept.version)
                quota = project_aggregate(kept, [self._to_event(stored) for stored in newer])
            except Exception:  # never trusted half-applied: loaded from the store instead
                log.warning("the kept prompt quota of %s could not be brought up to date; loading it", org.id,
                            exc_info=True)
            else:
                if isinstance(quota, PromptQuota):
                    self.fast_forwards += 1
                    return quota
        self.loads += 1
        return self._load(org)

    def keep(self, quota: PromptQuota) -> None:
        """`quota` was just saved (no pending events): kept for the next holder of its lock in this
        process, which must not be given it while the caller still uses it."""
        with self._guard:
            self._kept.pop(quota.org_id, None)
            if len(self._kept) >= self._maxsize:
                del self._kept[next(iter(self._kept))]  # the one kept longest ago
            self._kept[quota.org_id] = quota
