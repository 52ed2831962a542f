"""What the sync and async clients share: requests and their parsing, errors, the cache's entries
and its bookkeeping, and how a change of the feed maps to the cache entries it affects.

Nothing here does I/O. The cache's lock is only ever held for a few dictionary operations, never
while a request is in flight, and a cache hit takes no lock at all."""
from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import quote

import httpx

from promptforge_client.errors import ApiError, PromptForgeError, ServerUnavailable, TransportError
from promptforge_client.models import Change, Prompt

USER_AGENT = "promptforge-client/0.1"
INF = float("inf")
#: Change types that can change what a cached fetch returns (the prompt named by the change, or the
#: prompts including it). Review and release changes are followed by the prompts' own label moves;
#: they also refresh the entries of their label, in case a move is not visible to this reader.
PROMPT_CHANGE_PREFIX = "prompt."
LABEL_WIDE_TYPES = frozenset({"review.applied", "release.applied", "release.rolled_back"})


# -- configuration -----------------------------------------------------------------------------------


def resolve_config(base_url: str | None, api_key: str | None, token: str | None,
                   org_id: str | None) -> tuple[str, str, str]:
    base_url = base_url or os.environ.get("PROMPTFORGE_URL")
    if not base_url:
        raise ValueError("base_url is required (or set PROMPTFORGE_URL)")
    if api_key is not None and token is not None:
        raise ValueError("give api_key or token, not both")
    credential = api_key or token or os.environ.get("PROMPTFORGE_API_KEY")
    if not credential:
        raise ValueError("api_key= or token= is required (or set PROMPTFORGE_API_KEY)")
    org_id = org_id or os.environ.get("PROMPTFORGE_ORG")
    if not org_id:
        raise ValueError("org_id is required (or set PROMPTFORGE_ORG)")
    return base_url.rstrip("/"), credential, str(org_id)


def default_headers(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}", "User-Agent": USER_AGENT, "Accept": "application/json"}


# -- requests ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One request: method, path (under the base URL), query, JSON body, headers."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None


def org_path(org_id: str, *parts: str) -> str:
    return "/v1/orgs/" + quote(org_id, safe="") + "".join("/" + p for p in parts)


def fetch_call(org_id: str, name: str, label: str | None, version: int | None, split_key: str | None,
               etag: str | None, min_position: int | None) -> Call:
    params: dict[str, Any] = {}
    if version is not None:
        params["version"] = version
    elif label is not None:
        params["label"] = label
    if split_key is not None:
        params["split_key"] = split_key
    if min_position:
        params["min_position"] = min_position
    headers = {"If-None-Match": etag} if etag else None
    return Call("GET", org_path(org_id, "prompts", "by-name", quote(name, safe="")), params or None, None, headers)


def error_from(response: httpx.Response) -> ApiError:
    """The registry's error as an exception (5xx and 429: ServerUnavailable)."""
    code, message, request_id = f"HTTP_{response.status_code}", response.reason_phrase or "", None
    details: dict[str, Any] = {}
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
        request_id = body.get("request_id")
    request_id = request_id or response.headers.get("x-request-id")
    retry_after = response.headers.get("retry-after")
    if retry_after and "retry_after" not in details:
        try:
            details = {**details, "retry_after": float(retry_after)}
        except ValueError:
            pass
    kind = ServerUnavailable if response.status_code >= 500 or response.status_code == 429 else ApiError
    return kind(code, message, details, request_id=request_id, status=response.status_code)


def transport_error(exc: BaseException) -> TransportError:
    return TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, cause=exc)


def is_unavailable(exc: BaseException) -> bool:
    """Errors the cache rides out by serving what it has: the network, 5xx, 429."""
    return isinstance(exc, (TransportError, ServerUnavailable))


def content_key(*parts: Any) -> str:
    """An Idempotency-Key derived from content (visible ASCII, at most 255 characters)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
    return "pfc-" + digest[:48]


# -- the cache ---------------------------------------------------------------------------------------


#: (org_id, name, label, version, split_key)
Key: TypeAlias = "tuple[str, str, str | None, int | None, str | None]"


class Entry:
    """One cached fetch. `fresh_until` is a time.monotonic() deadline (inf: immutable); a stale
    entry (its TTL passed, or a change in the feed touched it) is still served while a refresh runs."""

    __slots__ = ("key", "prompt", "etag", "fresh_until", "stale", "refreshing", "rerun", "force", "want_position",
                 "retry_at", "failures", "ids", "immutable", "inflight_position")

    def __init__(self, key: Key, prompt: Prompt, etag: str | None, fresh_until: float, immutable: bool):
        self.key = key
        self.prompt = prompt
        self.etag = etag
        self.fresh_until = fresh_until
        self.stale = False  # set by the change feed: served, but refreshed at once
        self.refreshing = False
        self.rerun = False  # a change arrived while a refresh was in flight: refresh once more after it
        self.force = False  # refresh without If-None-Match (a rename keeps the ETag but changes the name)
        self.want_position = 0  # the feed position the next refresh must read at least
        self.retry_at = 0.0  # after a failed refresh, do not retry before this
        self.failures = 0
        self.immutable = immutable
        self.inflight_position = -1  # the min_position of the refresh in flight
        self.ids = _ids(prompt)


def _ids(prompt: Prompt) -> frozenset[str]:
    ids = {d.prompt_id for d in prompt.dependencies}
    if prompt.prompt_id:
        ids.add(prompt.prompt_id)
    return frozenset(ids)


class Failure:
    """A key whose last fetch failed for lack of the server: callers get their fallback (or the error)
    without waiting on the network again until `retry_at`."""

    __slots__ = ("error", "retry_at", "count")

    def __init__(self, error: PromptForgeError, retry_at: float, count: int):
        self.error = error
        self.retry_at = retry_at
        self.count = count


def backoff(failures: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s, ... at most `cap`."""
    delay = min(cap, base * (2.0 ** max(0, failures - 1)))
    return float(delay * (0.75 + random.random() * 0.5))


class Cache:
    """Entries by key, and by the prompt ids they depend on (for the change feed).

    Reads (`entries.get`) are lock-free; writers take `lock` for a few dict operations only."""

    def __init__(self, ttl: float, max_entries: int):
        self.ttl = ttl
        self.max_entries = max_entries
        self.entries: dict[Key, Entry] = {}
        self.failures: dict[Key, Failure] = {}
        self.by_id: dict[str, set[Key]] = {}
        self.lock = threading.Lock()

    def store(self, key: Key, prompt: Prompt, etag: str | None, now: float) -> Entry:
        immutable = key[3] is not None and all(d.label is None for d in prompt.dependencies)
        entry = Entry(key, prompt, etag, INF if immutable else now + self.ttl, immutable)
        with self.lock:
            old = self.entries.get(key)
            if old is not None:
                self._unindex(old)
            elif len(self.entries) >= self.max_entries:
                self._evict()
            self.entries[key] = entry
            self._index(entry)
            self.failures.pop(key, None)
        return entry

    def update(self, entry: Entry, prompt: Prompt, etag: str | None, now: float) -> None:
        """A refresh brought a new representation: swap it in (prompt first: a reader may see the new
        prompt with the old deadline, never the reverse)."""
        ids = _ids(prompt)
        entry.prompt = prompt
        entry.etag = etag
        entry.immutable = entry.key[3] is not None and all(d.label is None for d in prompt.dependencies)
        entry.fresh_until = INF if entry.immutable else now + self.ttl
        if ids != entry.ids:
            with self.lock:
                self._unindex(entry)
                entry.ids = ids
                if self.entries.get(entry.key) is entry:
                    self._index(entry)

    def drop(self, entry: Entry) -> None:
        with self.lock:
            if self.entries.get(entry.key) is entry:
                del self.entries[entry.key]
                self._unindex(entry)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.by_id.clear()
            self.failures.clear()

    def _index(self, entry: Entry) -> None:
        for pid in entry.ids:
            self.by_id.setdefault(pid, set()).add(entry.key)

    def _unindex(self, entry: Entry) -> None:
        for pid in entry.ids:
            keys = self.by_id.get(pid)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del self.by_id[pid]

    def _evict(self) -> None:
        # the oldest-inserted tenth (dicts keep insertion order); called with the lock held
        for key in list(self.entries)[: max(1, self.max_entries // 10)]:
            self._unindex(self.entries.pop(key))

    # -- refresh claims (one refresh per key at a time) -------------------------------------------
    def claim(self, entry: Entry, now: float) -> bool:
        """True when the caller must start a refresh of `entry` (no other is running for it and the
        retry backoff has passed)."""
        if entry.refreshing or now < entry.retry_at:
            return False
        with self.lock:
            if entry.refreshing:
                return False
            entry.refreshing = True
            return True

    def invalidate(self, entry: Entry, position: int, force: bool) -> bool:
        """The change feed says `entry` may be out of date as of `position`: mark it stale. True when
        the caller must start a refresh (False: one is in flight and will run again after it)."""
        with self.lock:
            entry.want_position = max(entry.want_position, position)
            entry.force = entry.force or force
            entry.stale = True
            entry.retry_at = 0.0
            if entry.refreshing:
                if entry.inflight_position < position or force:
                    entry.rerun = True  # the request in flight may predate this change
                return False
            entry.refreshing = True
            return True

    def begin(self, entry: Entry, floor: int = 0) -> tuple[int, bool]:
        """(min_position, force) for the refresh about to be sent (at least `floor`)."""
        with self.lock:
            force, entry.force = entry.force, False
            entry.rerun = False
            entry.inflight_position = max(entry.want_position, floor)
            return entry.inflight_position, force

    def finish(self, entry: Entry) -> bool:
        """The refresh is done; True when it must run again (a change arrived meanwhile)."""
        with self.lock:
            if entry.rerun:
                entry.rerun = False
                return True
            entry.refreshing = False
            return False

    # -- the change feed ----------------------------------------------------------------------------
    def affected(self, change: Change) -> list[tuple[Entry, bool]]:
        """The entries a change can affect (see `touches`), each with whether the refresh must skip
        the ETag (a rename keeps the version, hence the ETag, but changes the name). An entry read at
        or after the change's position already shows it: the feed's own read model may trail the
        catalogue, so a change can arrive after a fetch that asked for a later position."""
        out: dict[Key, tuple[Entry, bool]] = {}
        with self.lock:
            if change.type.startswith(PROMPT_CHANGE_PREFIX) and change.prompt_id:
                force = change.type == "prompt.renamed"
                for key in self.by_id.get(change.prompt_id, ()):
                    entry = self.entries.get(key)
                    if (entry is not None and not _reflects(entry, change.position)
                            and touches(entry, change.type, change.prompt_id, change.label)):
                        out[key] = (entry, force)
                if change.type in ("prompt.created", "prompt.renamed", "prompt.restored"):
                    self.failures.clear()  # a name that failed may resolve now
            elif change.type in LABEL_WIDE_TYPES:
                # A release lists its moves; each also comes as the prompt's own prompt.label_moved
                # (review.applied carries no prompt ids: its moves come that way only).
                for move in change.details.get("moves") or ():
                    pid = move.get("prompt_id") if isinstance(move, dict) else None
                    if not isinstance(pid, str):
                        continue
                    for key in self.by_id.get(pid, ()):
                        entry = self.entries.get(key)
                        if (entry is not None and not _reflects(entry, change.position)
                                and touches(entry, "prompt.label_moved", pid, change.label)):
                            out[key] = (entry, False)
        return list(out.values())

    def every_entry(self) -> list[Entry]:
        with self.lock:
            return list(self.entries.values())


def _reflects(entry: Entry, position: int) -> bool:
    """Whether the entry was read at log position `position` or later (its fetch asked the server
    for at least that position: `Prompt.position`), so it already shows the change made there."""
    return (entry.prompt.position or 0) >= position


def touches(entry: Entry, kind: str, prompt_id: str, label: str | None) -> bool:
    """Whether a change (`kind` on prompt `prompt_id`, about `label`) can change what `entry` serves.

    The entry's own prompt: a label move or removal only matters to entries of that label; a
    revision only to `latest`; anything else (rename, archive, restore, ...) to every entry. A prompt
    the entry includes: a label move or removal matters when the include goes through that label, a
    revision when it goes through `latest`; a version include is immutable; anything else matters."""
    moves = kind in ("prompt.label_moved", "prompt.label_removed")
    by_version = entry.key[3] is not None
    if entry.prompt.prompt_id == prompt_id:
        if moves:
            return not by_version and (entry.key[2] or "latest") == label
        if kind == "prompt.revised":
            return not by_version and (entry.key[2] or "latest") == "latest"
        return True
    for dep in entry.prompt.dependencies:
        if dep.prompt_id != prompt_id:
            continue
        if moves:
            if dep.label is not None and dep.label == label:
                return True
        elif kind == "prompt.revised":
            if dep.label == "latest":
                return True
        else:
            return True
    return False


def now() -> float:
    return time.monotonic()


# -- server-sent events ------------------------------------------------------------------------------


class SSEParser:
    """Feeds lines of a text/event-stream; returns ("event", id, type, data) or ("comment", text)."""

    def __init__(self) -> None:
        self._id: str | None = None
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[Any, ...] | None:
        if line == "":
            if not self._data and self._event is None:
                return None
            out = ("event", self._id, self._event or "message", "\n".join(self._data))
            self._event, self._data = None, []
            return out
        if line.startswith(":"):
            return ("comment", line[1:].strip())
        field_, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field_ == "id":
            self._id = value
        elif field_ == "event":
            self._event = value
        elif field_ == "data":
            self._data.append(value)
        return None


def parse_change(data: str) -> Change | None:
    try:
        body = json.loads(data)
        return Change.from_json(body)
    except (ValueError, KeyError, TypeError):
        return None


def ids_of(items: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(i["prompt_id"]) for i in items if i.get("prompt_id")}
