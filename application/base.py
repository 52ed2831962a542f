"""Shared machinery of the command methods: loading aggregates, the access policy, idempotency."""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.utils import strtobool

from application.access_cache import AccessCache
from application.coalesce import SaveCoalescer
from application.commands import CommandObserver
from application.log_head import LogHead
from application.quota_batches import QuotaBatches
from application.quota_reads import QuotaReads, quota_lock_key
from application.request_access import AccessReads, RequestAccess
from application.serialise import KeyedLocks
from application.policy import AccessPolicy, Grant, org_not_found
from application.prompt_cache import PromptCache
from application.principal import Principal
from application.results import CommandResult
from domain.api_key import ApiKey
from domain.errors import Conflict, NotFound
from domain.ids import idempotent_id
from domain.organisation import Organisation
from domain.permissions import Permission
from domain.quota import PromptQuota

T = TypeVar("T")
#: How many claimed prompt names a process remembers (BaseApp.names_taken), the oldest forgotten first.
NAMES_TAKEN_KEPT = 10_000
log = logging.getLogger(__name__)


def request_fingerprint(payload: dict[str, Any]) -> str:
    """Stable hash of a command's input, kept with idempotently created aggregates."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class BaseApp(Application[UUID]):
    """eventsourcing Application plus post-commit listeners, the access policy and loaders."""

    snapshotting_intervals = {Organisation: 100, PromptQuota: 100}
    #: Set by the composition root: told the outcome of every command (metrics).
    command_observer: CommandObserver | None = None

    def __init__(self, env: dict[str, str] | None = None):
        super().__init__(env)
        #: Serialises commands on one organisation (application.serialise); the composition root
        #: may replace it with one that also locks across processes.
        self.command_locks = KeyedLocks()
        self._listeners: list[Callable[[int], None]] = []
        self._listeners_lock = threading.Lock()
        #: Per thread: positions committed by the running command, told to the listeners when it ends.
        self._deferred = threading.local()
        self.policy = AccessPolicy(self._org, self._key_or_none)
        #: Where requests authenticate and are authorised (adr/0020): loads from the store until the
        #: composition root wires the access cache (`use_access_cache`).
        self.log_head: LogHead | None = None
        self.access_cache: AccessCache | None = None
        #: Prompts this process saved, for its next command on them (application.prompt_cache,
        #: adr/0026): wired with the log head, which keeps it current.
        self.prompt_cache: PromptCache | None = None
        self._request_reads = AccessReads(self.repository.get)
        #: Prompt names (their PromptNameIndex ids) this process saw claimed: a claim is for good (adr/0031).
        self.names_taken: dict[UUID, None] = {}
        self._names_lock = threading.Lock()
        #: Prompt creations counted on their organisation's quota and saved in batches (adr/0025).
        #: The quota as its lock is granted, from the one this process saved last (adr/0031).
        self.quota_reads = QuotaReads(lambda key, read_after=None: self.command_locks.hold(key, read_after),
                                      self._prompt_quota, self._quota_events_after, self.mapper.to_domain_event)
        self.quota_batches = QuotaBatches(self.quota_reads.locked, self._prompt_quota, self._save,
                                          self.quota_reads.keep)
        #: Group commit of concurrent saves (application.coalesce), on Postgres when the env says
        #: COALESCE_SAVES=y (the composition root does, from PROMPTFORGE_COALESCE_SAVES: adr/0022).
        self.save_coalescer: SaveCoalescer | None = None
        if strtobool(self.env.get("COALESCE_SAVES", "n")) and type(self.recorder).__module__ == "eventsourcing.postgres":
            self.save_coalescer = SaveCoalescer(self.recorder.insert_events)
            self.recorder.insert_events = self.save_coalescer  # the event store calls it on this instance

    # -- post-commit nudges -----------------------------------------------------------------
    def add_commit_listener(self, listener: Callable[[int], None]) -> None:
        """Called with the last position after every committed save (never before the commit)."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def _notify(self, recordings) -> None:  # eventsourcing hook, runs after the commit
        if not recordings:
            return
        position = recordings[-1].notification.id
        pending = getattr(self._deferred, "positions", None)
        if pending is not None:  # inside a command: told when it ends (commit_notices_deferred)
            pending.append(position)
            return
        self._tell_listeners(position)

    def _tell_listeners(self, position: int) -> None:
        for listener in list(self._listeners):
            try:
                listener(position)
            except Exception:  # a nudge is best-effort: events are already durable
                log.warning("commit listener failed", exc_info=True)

    @contextmanager
    def commit_notices_deferred(self) -> Iterator[None]:
        """Commits made inside are told to the listeners when the block ends, in order, in this
        thread, still after their commits: `@command` wraps each command in it outside its lock,
        so a nudge (a Redis round trip on Postgres) is never sent while the organisation's command
        lock is held (adr/0022). Nested blocks are told by the outermost one."""
        if getattr(self._deferred, "positions", None) is not None:
            yield
            return
        self._deferred.positions = []
        try:
            yield
        finally:
            positions, self._deferred.positions = self._deferred.positions, None
            for position in positions:
                self._tell_listeners(position)

    # -- authorisation ----------------------------------------------------------------------
    def grant(self, principal: Principal, org_id: UUID, permission: Permission | None = None) -> Grant:
        """What the principal may do in the org (application.policy); with `permission`, also
        require it (403 otherwise). Outside the principal's tenancy: NotFound."""
        grant = self.policy.grant(principal, org_id)
        return grant.require(permission) if permission is not None else grant

    def authorise(self, principal: Principal, org_id: UUID, permission: Permission | None = None, *,
                  checked_head: int | None = None) -> Grant:
        """`grant`, for commands and reads that never write the Organisation (the prompt commands):
        with the access cache wired (adr/0020), after a fresh read of the log head, from the cached
        aggregates: as current as loading them from the repository, without the loads (a read of
        the new events, a replay and a deep copy of the organisation and, for a key, of the key).
        `grant.org` is shared and read-only; commands that change the Organisation use `grant`.
        `checked_head`: a `log_head.check()` made for this command's request after the request began
        (the HTTP scope's, adr/0026): not repeated; every event committed before the request began
        is at or below it, so authorisation is still current on the next request."""
        if self.log_head is None:
            return self.grant(principal, org_id, permission)
        return self.request_access(checked_head=checked_head).grant(principal, org_id, permission)

    def use_access_cache(self, head: LogHead, cache: AccessCache) -> None:
        """Serve `request_access()` from `cache`, kept current by `head` (adr/0020)."""
        head.subscribe(cache.evict)
        self.prompt_cache = PromptCache()
        head.subscribe(self.prompt_cache.changed)
        self._request_reads = AccessReads(cache.get)
        self._cached_reads = AccessReads(cache.peek)
        self.access_cache = cache
        self.log_head = head

    def request_access(self, *, checked_head: int | None = None, cached_only: bool = False) -> RequestAccess:
        """Authentication and authorisation for one request or query, read-only (application.request_access).
        With the cache wired: one indexed read of the log head, then cached aggregates current as of it.
        `checked_head`: a `log_head.check()` this request already made (since it began), not repeated.
        `cached_only`: never read the store; a missing aggregate raises access_cache.NotCached."""
        if self.log_head is None:
            return RequestAccess(self._request_reads, None)
        head = checked_head if checked_head is not None else self.log_head.check()
        return RequestAccess(self._cached_reads if cached_only else self._request_reads, head)

    def quota_lock(self, org_id: UUID):
        """The lock of the organisation's prompt counter (domain.quota, adr/0025): prompt creations
        queue on it (in the process, and across processes on Postgres) instead of colliding on the
        counter's stream. Taken after the organisation's lock by whoever holds both."""
        return self.command_locks.hold(quota_lock_key(org_id))

    def _quota_events_after(self, quota_id: UUID, version: int):
        return self.recorder.select_events(quota_id, gt=version)

    def _prompt_quota(self, org: Organisation) -> PromptQuota:
        """The organisation's prompt counter to write to, opened (not yet saved) from the count its
        own stream kept before adr/0025 when it has none: whoever saves it first wins, the other
        save collides and its command retries."""
        try:
            quota = self.repository.get(PromptQuota.id_for(org.id))
        except AggregateNotFoundError:
            return PromptQuota.open(org.id, org.plan, org.prompt_count)
        if not isinstance(quota, PromptQuota):  # pragma: no cover - ids are derived, never chosen
            raise TypeError(f"{quota!r} is not a PromptQuota")
        return quota

    # -- helpers ----------------------------------------------------------------------------
    def head_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def _save(self, *aggregates) -> int | None:
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def _save_kept(self, kept, *others) -> int | None:
        """`_save(kept, *others)`, then `kept` (a Prompt) is left in the prompt cache for this
        process's next command on it (application.prompt_cache): the caller must not touch it again."""
        recordings = self.save(kept, *others)
        if not recordings:
            return None
        if self.prompt_cache is not None:
            own = [r.notification.id for r in recordings if r.domain_event.originator_id == kept.id]
            if own:
                self.prompt_cache.offer(kept, own[-1])
        return recordings[-1].notification.id

    def _load(self, aggregate_id: UUID, cls: type[T], not_found: Callable[[], NotFound]) -> T:
        """The aggregate, or `not_found()` raised (a fresh exception each time) when there is no
        such aggregate of that type."""
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise not_found() from None
        if not isinstance(aggregate, cls):
            raise not_found()
        return aggregate

    def _exists(self, aggregate_id: UUID) -> bool:
        """Whether the aggregate has any event: one indexed read of its first event. (The
        repository's `in` would reconstruct it: a snapshot read, a read of all its events, and a
        deep copy when cached.)"""
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _name_taken(self, index_id: UUID) -> bool:
        """Whether a prompt name is claimed (`_exists` of its PromptNameIndex), remembered when it
        is: claims are never released (renamed prompts keep their old names as aliases)."""
        if index_id in self.names_taken:
            return True
        if not self._exists(index_id):
            return False
        with self._names_lock:
            if len(self.names_taken) >= NAMES_TAKEN_KEPT:
                self.names_taken.pop(next(iter(self.names_taken)), None)
            self.names_taken[index_id] = None
        return True

    def _org(self, org_id: UUID) -> Organisation:
        return self._load(org_id, Organisation, org_not_found)

    def _key_or_none(self, key_id: UUID) -> ApiKey | None:
        try:
            aggregate = self.repository.get(key_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, ApiKey) else None

    def _idempotent(
        self, principal: Principal, scope: str, key: str | None, payload: dict[str, Any]
    ) -> tuple[UUID, str, CommandResult | None]:
        """(new aggregate id, request fingerprint, replayed result or None).

        With an Idempotency-Key the id is derived from (actor, scope, key): a retry finds the
        aggregate it created and is answered from it; the same key with another body conflicts."""
        fingerprint = request_fingerprint(payload)
        if not key:
            return uuid4(), fingerprint, None
        aggregate_id = idempotent_id(principal.actor, scope, key)
        try:
            existing = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return aggregate_id, fingerprint, None
        if getattr(existing, "request_hash", None) != fingerprint:
            raise Conflict("Idempotency-Key was used with a different request", code="IDEMPOTENCY_KEY_REUSED")
        version = 1 if hasattr(existing, "versions") else None  # the original response named version 1
        return aggregate_id, fingerprint, CommandResult(aggregate_id, self.head_position(), version, replayed=True)
