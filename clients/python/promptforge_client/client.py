"""The synchronous client: cached, never-stale-for-long `get_prompt`, optional coherent mode
(`watch=True`), and the write side."""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx

from promptforge_client import _calls
from promptforge_client._core import (
    INF, Cache, Call, Entry, Failure, Key, SSEParser, backoff, default_headers, error_from, fetch_call,
    is_unavailable, org_path, parse_change, resolve_config, transport_error,
)
from promptforge_client.errors import ApiError, NotModified, PromptForgeError
from promptforge_client.models import (
    Change, ChangePage, LabelMoved, Prompt, PromptCreated, PromptPage, PromptSummary, ReviewRequest, SearchResult,
    VersionCreated,
)

log = logging.getLogger("promptforge_client")
_monotonic = time.monotonic
_STOP = object()


class Client:
    """A PromptForge client for one organisation.

    ``get_prompt`` serves from an in-process cache keyed by (org, name, label | version, split_key):

    * a version (``version=n``) is immutable: cached forever (unless it includes another prompt
      through a label, which can move: then it is treated like a label);
    * a label is fresh for `ttl` seconds; after that the cached copy is still served at once and
      revalidated in the background (If-None-Match: a 304 keeps it), one refresh per key at a time;
    * when the registry cannot answer (network error, 5xx, 429) the last good copy keeps being served;
      with no copy, the caller's `fallback` is returned (``is_fallback=True``), else the error raised;
      a cache hit never raises, never does I/O and never waits on a lock held during I/O.

    ``watch=True`` (coherent mode) follows the organisation's change feed (SSE) in a background
    thread: a change to a prompt refreshes exactly the entries that serve it (or include it) within
    milliseconds, and while the stream is live, entries do not expire. When the stream drops, the
    client reconnects with backoff (resuming with Last-Event-ID) and meanwhile falls back to the TTL.
    """

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, token: str | None = None,
                 org_id: str | None = None, ttl: float = 60.0, watch: bool = False, timeout: float = 5.0,
                 max_entries: int = 10_000, refresh_workers: int = 4, transport: httpx.BaseTransport | None = None,
                 headers: Mapping[str, str] | None = None, verify: bool | str = True,
                 stream_read_timeout: float = 40.0, reconnect_delay: float = 0.5):
        self.base_url, credential, self.org_id = resolve_config(base_url, api_key, token, org_id)
        self.ttl = float(ttl)
        self.timeout = float(timeout)
        self._headers = {**default_headers(credential), **(headers or {})}
        self._transport = transport
        self._verify = verify
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport,
                                  verify=verify)
        self._cache = Cache(self.ttl, max_entries)
        self._entries = self._cache.entries  # read without a lock on the hot path
        #: True while the change stream is connected and caught up (coherent mode).
        self._live = False
        #: The highest log position seen: the change feed's, or this client's own writes.
        self._position = 0
        self._inflight: dict[Key, threading.Event] = {}
        self._inflight_lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._max_workers = max(1, refresh_workers)
        self._workers_lock = threading.Lock()
        self._closed = threading.Event()
        self._stream_read_timeout = stream_read_timeout
        self._reconnect_delay = reconnect_delay
        self._watch_thread: threading.Thread | None = None
        self._watch_response: httpx.Response | None = None
        self._watch_http: httpx.Client | None = None
        self._last_event_id: int | None = None
        self._caught_up_once = False
        self.watch_connects = 0  # how many times the stream (re)connected (diagnostics, tests)
        self.watch_error: PromptForgeError | None = None
        if watch:
            self._watch_thread = threading.Thread(target=self._watch_loop, name="promptforge-watch", daemon=True)
            self._watch_thread.start()

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the watcher and the refresh workers and close the connections."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._live = False
        response = self._watch_response
        if response is not None:
            _shutdown(response)
        for _ in self._workers:
            self._queue.put(_STOP)
        if self._watch_http is not None:
            try:
                self._watch_http.close()
            except Exception:  # pragma: no cover
                pass
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def watching(self) -> bool:
        """True while coherent mode's stream is connected and caught up."""
        return self._live

    def wait_until_watching(self, timeout: float = 10.0) -> bool:
        deadline = _monotonic() + timeout
        while not self._live and _monotonic() < deadline:
            time.sleep(0.01)
        return self._live

    # -- the read path -----------------------------------------------------------------------------
    def get_prompt(self, name: str, label: str | None = "production", *, version: int | None = None,
                   fallback: Any = None, split_key: str | None = None, org_id: str | None = None) -> Prompt:
        """The prompt `name` at `label` (default production) or at `version`, from the cache when it
        can be. See the class docstring for the cache's rules; `fallback` (a template, chat messages,
        a dict or a Prompt) is returned, marked ``is_fallback=True``, when there is no cached copy and
        the registry cannot be reached (network error, 5xx, 429)."""
        key = (org_id or self.org_id, name, None if version is not None else label, version, split_key)
        entry = self._entries.get(key)
        if entry is not None:
            if (self._live and not entry.stale) or entry.fresh_until > _monotonic():
                return entry.prompt
            return self._stale_hit(entry)
        return self._miss(key, fallback)

    def _stale_hit(self, entry: Entry) -> Prompt:
        try:
            t = _monotonic()
            if (entry.stale or entry.fresh_until <= t) and self._cache.claim(entry, t):
                self._submit(entry)
        except Exception:  # never on the hot path
            log.exception("promptforge: could not schedule a refresh")
        return entry.prompt

    def _miss(self, key: Key, fallback: Any) -> Prompt:
        failure = self._cache.failures.get(key)
        if failure is not None and _monotonic() < failure.retry_at:
            return self._fallback_or_raise(key, fallback, failure.error)
        with self._inflight_lock:
            pending = self._inflight.get(key)
            leader = pending is None
            event = self._inflight[key] = threading.Event() if pending is None else pending
        if not leader:  # another thread is fetching this key: wait for its answer
            event.wait(self.timeout * 2)
            entry = self._entries.get(key)
            if entry is not None:
                return entry.prompt
            failure = self._cache.failures.get(key)
            if failure is not None:
                return self._fallback_or_raise(key, fallback, failure.error)
        try:
            prompt, etag = self._fetch(key, None, self._position)
        except PromptForgeError as exc:
            if is_unavailable(exc):
                old = self._cache.failures.get(key)
                count = (old.count if old else 0) + 1
                self._cache.failures[key] = Failure(exc, _monotonic() + backoff(count), count)
                return self._fallback_or_raise(key, fallback, exc)
            raise
        finally:
            if leader:
                with self._inflight_lock:
                    self._inflight.pop(key, None)
                event.set()
        self._cache.store(key, prompt, etag, _monotonic())
        return prompt

    @staticmethod
    def _fallback_or_raise(key: Key, fallback: Any, error: PromptForgeError) -> Prompt:
        if fallback is None:
            raise error
        return Prompt.fallback(fallback, name=key[1], label=key[2])

    def _fetch(self, key: Key, etag: str | None, min_position: int | None) -> tuple[Prompt, str | None]:
        org, name, label, version, split_key = key
        call = fetch_call(org, name, label, version, split_key, etag, min_position)
        try:
            r = self._http.request(call.method, call.path, params=call.params, headers=call.headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if r.status_code == 304:
            raise NotModified()
        if r.status_code != 200:
            error = error_from(r)
            if error.code == "INVALID_MIN_POSITION" and min_position:  # the server's log was reset
                self._position = 0
                return self._fetch(key, etag, None)
            raise error
        return Prompt.from_fetch(r.json(), r.headers.get("etag"), min_position or None), r.headers.get("etag")

    def fetch_prompt(self, name: str, label: str | None = "production", *, version: int | None = None,
                     split_key: str | None = None, resolve: bool = True) -> Prompt:
        """One uncached by-name fetch (``resolve=False``: the raw content, includes unresolved)."""
        call = fetch_call(self.org_id, name, None if version is not None else label, version, split_key, None,
                          self._position)
        params = dict(call.params or {})
        if not resolve:
            params["resolve"] = "false"
        r = self._send(Call(call.method, call.path, params))
        return Prompt.from_fetch(r.json(), r.headers.get("etag"))

    # -- background refresh ------------------------------------------------------------------------
    def _submit(self, entry: Entry) -> None:
        if self._closed.is_set():
            self._cache.finish(entry)
            return
        self._queue.put(entry)
        if len(self._workers) < self._max_workers:
            with self._workers_lock:
                if len(self._workers) < self._max_workers:
                    worker = threading.Thread(target=self._work, name=f"promptforge-refresh-{len(self._workers)}",
                                              daemon=True)
                    self._workers.append(worker)
                    worker.start()

    def _work(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is _STOP or self._closed.is_set():
                return
            try:
                self._refresh(entry)
            except Exception:  # pragma: no cover - a refresh must never kill its worker
                log.exception("promptforge: refresh failed")
                self._cache.finish(entry)

    def _refresh(self, entry: Entry) -> None:
        cache = self._cache
        while True:
            position, force = cache.begin(entry, self._position)
            ok = False
            try:
                prompt, etag = self._fetch(entry.key, None if force else entry.etag, position)
            except NotModified:
                ok = True
                entry.fresh_until = INF if entry.immutable else _monotonic() + cache.ttl
                if position and (entry.prompt.position or 0) < position:
                    entry.prompt = replace(entry.prompt, position=position)
            except PromptForgeError as exc:
                if isinstance(exc, ApiError) and exc.status == 404:
                    log.warning("promptforge: %s is gone (%s): dropped from the cache", entry.key[1], exc.code)
                    cache.drop(entry)
                    ok = True
                else:
                    entry.failures += 1
                    entry.retry_at = _monotonic() + backoff(entry.failures)
                    log.warning("promptforge: refresh of %s failed (%s); serving the cached copy", entry.key[1],
                                exc.code)
            else:
                ok = True
                cache.update(entry, prompt, etag, _monotonic())
            if ok:
                entry.failures = 0
            if not self._finish(entry, ok):
                return

    def _finish(self, entry: Entry, ok: bool) -> bool:
        with self._cache.lock:
            if entry.rerun:
                entry.rerun = False
                return True
            if ok:
                entry.stale = False
            entry.refreshing = False
            return False

    # -- coherent mode -----------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        timeout = httpx.Timeout(self.timeout, read=self._stream_read_timeout)
        self._watch_http = http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout,
                                               transport=self._transport, verify=self._verify)
        failures = 0
        path = org_path(self.org_id, "changes", "stream")
        while not self._closed.is_set():
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if self._last_event_id is not None:
                headers["Last-Event-ID"] = str(self._last_event_id)
            try:
                with http.stream("GET", path, headers=headers) as response:
                    if response.status_code != 200:
                        response.read()
                        raise error_from(response)
                    self._watch_response = response
                    self.watch_connects += 1
                    parser = SSEParser()
                    for line in response.iter_lines():
                        if self._closed.is_set():
                            return
                        item = parser.feed(line)
                        if item is None:
                            continue
                        if item[0] == "comment":
                            if item[1] == "caught-up":
                                self._caught_up()
                                failures = 0
                            continue
                        _, event_id, _, data = item
                        change = parse_change(data)
                        if change is not None:
                            self._on_change(change)
                        if event_id and event_id.isdigit():
                            self._last_event_id = int(event_id)
            except PromptForgeError as exc:
                self.watch_error = exc
                log.warning("promptforge: change stream refused (%s); retrying", exc.code)
            except (httpx.HTTPError, OSError, ValueError, RuntimeError) as exc:
                if not self._closed.is_set():
                    log.info("promptforge: change stream dropped (%s); reconnecting", type(exc).__name__)
            finally:
                self._live = False
                self._watch_response = None
            failures += 1
            self._closed.wait(backoff(failures, base=self._reconnect_delay))

    def _caught_up(self) -> None:
        if not self._caught_up_once:
            # entries fetched before the stream was live may predate changes it skipped: revalidate them
            self._caught_up_once = True
            for entry in self._cache.every_entry():
                if self._cache.invalidate(entry, self._position, False):
                    self._submit(entry)
        self._live = True

    def _on_change(self, change: Change) -> None:
        self.observe_position(change.position)
        for entry, force in self._cache.affected(change):
            if self._cache.invalidate(entry, change.position, force):
                self._submit(entry)

    def observe_position(self, position: int) -> None:
        """Read at least log position `position` from now on (a write made elsewhere, e.g. a deploy
        pipeline's `position`): misses and refreshes pass it as min_position."""
        if position > self._position:
            with self._inflight_lock:  # writers and the watcher both advance it: never backwards
                if position > self._position:
                    self._position = int(position)

    # -- cache management --------------------------------------------------------------------------
    def invalidate(self, name: str | None = None) -> None:
        """Forget cached entries (of one prompt name, or all)."""
        if name is None:
            self._cache.clear()
            return
        for entry in self._cache.every_entry():
            if entry.key[1] == name:
                self._cache.drop(entry)

    def cache_info(self) -> dict[str, Any]:
        entries = self._cache.every_entry()
        return {"entries": len(entries), "stale": sum(1 for e in entries if e.stale),
                "refreshing": sum(1 for e in entries if e.refreshing), "failures": len(self._cache.failures),
                "watching": self._live, "position": self._position}

    # -- requests ----------------------------------------------------------------------------------
    def _send(self, call: Call, timeout: float | None = None) -> httpx.Response:
        try:
            r = self._http.request(call.method, call.path, params=call.params, json=call.json, headers=call.headers,
                                   timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if r.status_code >= 400:
            raise error_from(r)
        position = r.headers.get("x-event-position")
        if position and position.isdigit():
            self.observe_position(int(position))  # read-your-writes for every later read
        return r

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                headers: Mapping[str, str] | None = None) -> Any:
        """Any other route (path under the base URL, e.g. ``/v1/orgs/{org}/releases``): its JSON."""
        r = self._send(Call(method, path, dict(params) if params else None, json, dict(headers) if headers else None))
        return r.json() if r.content else None

    # -- the write side ----------------------------------------------------------------------------
    def create_prompt(self, name: str, template: str | None = None, *,
                      messages: Sequence[Mapping[str, Any]] | None = None, template_format: str | None = None,
                      variables: Sequence[Any] | None = None, config: Mapping[str, Any] | None = None,
                      tags: Sequence[str] | None = None, message: str = "",
                      idempotency_key: str | None = None) -> PromptCreated:
        """Version 1 of a new text prompt (`template`) or chat prompt (`messages`)."""
        return _calls.parse_created(self._send(_calls.create_prompt(
            self.org_id, name, template, messages, template_format, variables, config, tags, message,
            idempotency_key)))

    def revise_prompt(self, prompt_id: str, base_version: int, template: str | None = None, *,
                      messages: Sequence[Mapping[str, Any]] | None = None, template_format: str | None = None,
                      variables: Sequence[Any] | None = None, config: Mapping[str, Any] | None = None,
                      tags: Sequence[str] | None = None, message: str = "",
                      idempotency_key: str | None = None) -> VersionCreated:
        """Version base_version + 1 (a stale base is ApiError PROMPT_VERSION_CONFLICT); fields left out
        are inherited from the latest version."""
        return _calls.parse_version(self._send(_calls.revise_prompt(
            self.org_id, prompt_id, base_version, template, messages, template_format, variables, config, tags,
            message, idempotency_key)))

    def move_label(self, prompt_id: str, label: str, version: int | None = None, *,
                   split: Sequence[Mapping[str, int]] | None = None,
                   expected_version: int | None = None) -> LabelMoved:
        """Point `label` at `version` (or a traffic `split`); `expected_version` is the compare-and-set
        (0 = not set yet; a mismatch is LABEL_CONFLICT). Protected labels: LABEL_PROTECTED (use
        request_review)."""
        return _calls.parse_label(self._send(_calls.move_label(self.org_id, prompt_id, label, version, split,
                                                               expected_version)))

    def request_review(self, prompt_id: str, label: str, version: int | None = None, *, expected_version: int,
                       split: Sequence[Mapping[str, int]] | None = None, remove: bool = False,
                       reason: str = "") -> ReviewRequest:
        """Ask for a protected label's move (four eyes): applied when approved."""
        return _calls.parse_review(self._send(_calls.request_review(
            self.org_id, prompt_id, label, version, split, remove, expected_version, reason)))

    def list_review_requests(self, *, status: str | None = "open", prompt_id: str | None = None) -> list[ReviewRequest]:
        return _calls.parse_reviews(self._send(_calls.list_reviews(self.org_id, status, prompt_id, self._position)))

    def list_prompts(self, *, tag: str | None = None, label: str | None = None, name_prefix: str | None = None,
                     folder: str | None = None, archived: bool | None = False, sort: str | None = None,
                     limit: int | None = None, cursor: str | None = None) -> PromptPage:
        """One page (``archived=None``: archived or not)."""
        return _calls.parse_page(self._send(_calls.list_prompts(
            self.org_id, tag=tag, label=label, name_prefix=name_prefix, folder=folder, archived=archived, sort=sort,
            limit=limit, cursor=cursor, min_position=self._position)))

    def iter_prompts(self, **filters: Any) -> Iterator[PromptSummary]:
        """Every prompt matching the filters of list_prompts, page after page."""
        cursor = None
        filters.setdefault("limit", 200)
        while True:
            page = self.list_prompts(cursor=cursor, **filters)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def search(self, query: str, *, mode: str = "hybrid", limit: int = 10, tags: Sequence[str] | None = None,
               label: str | None = None, include_archived: bool = False) -> SearchResult:
        return _calls.parse_search(self._send(_calls.search(self.org_id, query, mode, limit, tags, label,
                                                            include_archived, self._position)))

    def get_prompt_info(self, prompt_id: str) -> dict[str, Any]:
        """GET .../prompts/{id}: the latest version's raw content, labels, splits (JSON)."""
        body: dict[str, Any] = self._send(_calls.get_prompt_info(self.org_id, prompt_id, self._position)).json()
        return body

    def get_org(self) -> dict[str, Any]:
        body: dict[str, Any] = self._send(_calls.get_org(self.org_id)).json()
        return body

    def changes(self, after: int = 0, *, limit: int = 100, wait: float = 0) -> ChangePage:
        """One page of the change feed (long-polls up to `wait` seconds when there is nothing new); like
        every read, it waits (bounded) until the feed holds the writes this client has seen."""
        return _calls.parse_changes(self._send(_calls.changes(self.org_id, after, limit, wait, self._position),
                                               timeout=self.timeout + wait if wait else None))


def _shutdown(response: httpx.Response) -> None:
    """End a streaming response from another thread: closing a socket does not wake a thread blocked
    reading it, shutting it down does (and the server sees the disconnect at once)."""
    import socket

    stream = response.extensions.get("network_stream")
    sock = None
    if stream is not None:
        try:
            sock = stream.get_extra_info("socket")
        except Exception:  # pragma: no cover - another transport
            sock = None
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        response.close()
    except Exception:  # pragma: no cover - best effort
        pass
