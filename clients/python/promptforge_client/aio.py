"""The asyncio client: the same cache, rules and write side as `Client`, with background refreshes
and the change-feed watcher as tasks on the running event loop."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
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


class AsyncClient:
    """``async with AsyncClient(url, api_key=..., org_id=..., watch=True) as pf: p = await pf.get_prompt(...)``

    Same semantics as `Client` (see there). The watcher (``watch=True``) starts on the first call
    on a running loop (or on ``__aenter__`` / ``start()``); use ``aclose()`` (or ``async with``)."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, token: str | None = None,
                 org_id: str | None = None, ttl: float = 60.0, watch: bool = False, timeout: float = 5.0,
                 max_entries: int = 10_000, transport: httpx.AsyncBaseTransport | None = None,
                 headers: Mapping[str, str] | None = None, verify: bool | str = True,
                 stream_read_timeout: float = 40.0, reconnect_delay: float = 0.5):
        self.base_url, credential, self.org_id = resolve_config(base_url, api_key, token, org_id)
        self.ttl = float(ttl)
        self.timeout = float(timeout)
        self._headers = {**default_headers(credential), **(headers or {})}
        self._transport = transport
        self._verify = verify
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=timeout,
                                       transport=transport, verify=verify)
        self._cache = Cache(self.ttl, max_entries)
        self._entries = self._cache.entries
        self._live = False
        self._position = 0
        self._inflight: dict[Key, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._watch = watch
        self._watch_task: asyncio.Task[None] | None = None
        self._stream_read_timeout = stream_read_timeout
        self._reconnect_delay = reconnect_delay
        self._last_event_id: int | None = None
        self._caught_up_once = False
        self.watch_connects = 0
        self.watch_error: PromptForgeError | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the watcher (``watch=True``) on the running loop; idempotent."""
        if self._watch and self._watch_task is None and not self._closed:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch_loop(), name="promptforge-watch")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._live = False
        tasks = [t for t in (self._watch_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    @property
    def watching(self) -> bool:
        return self._live

    async def wait_until_watching(self, timeout: float = 10.0) -> bool:
        self.start()
        deadline = _monotonic() + timeout
        while not self._live and _monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self._live

    # -- the read path -----------------------------------------------------------------------------
    async def get_prompt(self, name: str, label: str | None = "production", *, version: int | None = None,
                         fallback: Any = None, split_key: str | None = None, org_id: str | None = None) -> Prompt:
        """See `Client.get_prompt`. A cache hit completes without awaiting anything."""
        key = (org_id or self.org_id, name, None if version is not None else label, version, split_key)
        entry = self._entries.get(key)
        if entry is not None:
            if (self._live and not entry.stale) or entry.fresh_until > _monotonic():
                return entry.prompt
            return self._stale_hit(entry)
        if self._watch_task is None and self._watch:
            self.start()
        return await self._miss(key, fallback)

    def _stale_hit(self, entry: Entry) -> Prompt:
        try:
            t = _monotonic()
            if (entry.stale or entry.fresh_until <= t) and self._cache.claim(entry, t):
                self._spawn(self._refresh(entry))
        except Exception:
            log.exception("promptforge: could not schedule a refresh")
        return entry.prompt

    async def _miss(self, key: Key, fallback: Any) -> Prompt:
        failure = self._cache.failures.get(key)
        if failure is not None and _monotonic() < failure.retry_at:
            return _fallback_or_raise(key, fallback, failure.error)
        pending = self._inflight.get(key)
        if pending is not None:  # another task is fetching this key
            try:
                await asyncio.shield(pending)
            except Exception:
                pass
            entry = self._entries.get(key)
            if entry is not None:
                return entry.prompt
            failure = self._cache.failures.get(key)
            if failure is not None:
                return _fallback_or_raise(key, fallback, failure.error)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            prompt, etag = await self._fetch(key, None, self._position)
        except PromptForgeError as exc:
            if is_unavailable(exc):
                old = self._cache.failures.get(key)
                count = (old.count if old else 0) + 1
                self._cache.failures[key] = Failure(exc, _monotonic() + backoff(count), count)
                return _fallback_or_raise(key, fallback, exc)
            raise
        finally:
            self._inflight.pop(key, None)
            if not future.done():
                future.set_result(None)
        self._cache.store(key, prompt, etag, _monotonic())
        return prompt

    async def _fetch(self, key: Key, etag: str | None, min_position: int | None) -> tuple[Prompt, str | None]:
        org, name, label, version, split_key = key
        call = fetch_call(org, name, label, version, split_key, etag, min_position)
        try:
            r = await self._http.request(call.method, call.path, params=call.params, headers=call.headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if r.status_code == 304:
            raise NotModified()
        if r.status_code != 200:
            error = error_from(r)
            if error.code == "INVALID_MIN_POSITION" and min_position:
                self._position = 0
                return await self._fetch(key, etag, None)
            raise error
        return Prompt.from_fetch(r.json(), r.headers.get("etag"), min_position or None), r.headers.get("etag")

    async def fetch_prompt(self, name: str, label: str | None = "production", *, version: int | None = None,
                           split_key: str | None = None, resolve: bool = True) -> Prompt:
        call = fetch_call(self.org_id, name, None if version is not None else label, version, split_key, None,
                          self._position)
        params = dict(call.params or {})
        if not resolve:
            params["resolve"] = "false"
        r = await self._send(Call(call.method, call.path, params))
        return Prompt.from_fetch(r.json(), r.headers.get("etag"))

    # -- background refresh ------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, entry: Entry) -> None:
        cache = self._cache
        try:
            while True:
                position, force = cache.begin(entry, self._position)
                ok = False
                try:
                    prompt, etag = await self._fetch(entry.key, None if force else entry.etag, position)
                except NotModified:
                    ok = True
                    entry.fresh_until = INF if entry.immutable else _monotonic() + cache.ttl
                    if position and (entry.prompt.position or 0) < position:
                        entry.prompt = replace(entry.prompt, position=position)
                except PromptForgeError as exc:
                    if isinstance(exc, ApiError) and exc.status == 404:
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
                with cache.lock:
                    if entry.rerun:
                        entry.rerun = False
                        continue
                    if ok:
                        entry.stale = False
                    entry.refreshing = False
                    return
        except BaseException:
            with cache.lock:
                entry.refreshing = False
            raise

    # -- coherent mode -----------------------------------------------------------------------------
    async def _watch_loop(self) -> None:
        timeout = httpx.Timeout(self.timeout, read=self._stream_read_timeout)
        failures = 0
        path = org_path(self.org_id, "changes", "stream")
        async with httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=timeout,
                                     transport=self._transport, verify=self._verify) as http:
            while not self._closed:
                headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
                if self._last_event_id is not None:
                    headers["Last-Event-ID"] = str(self._last_event_id)
                try:
                    async with http.stream("GET", path, headers=headers) as response:
                        if response.status_code != 200:
                            await response.aread()
                            raise error_from(response)
                        self.watch_connects += 1
                        parser = SSEParser()
                        async for line in response.aiter_lines():
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
                except asyncio.CancelledError:
                    self._live = False
                    raise
                except PromptForgeError as exc:
                    self.watch_error = exc
                    log.warning("promptforge: change stream refused (%s); retrying", exc.code)
                except (httpx.HTTPError, OSError, ValueError, RuntimeError) as exc:
                    log.info("promptforge: change stream dropped (%s); reconnecting", type(exc).__name__)
                finally:
                    self._live = False
                failures += 1
                await asyncio.sleep(backoff(failures, base=self._reconnect_delay))

    def _caught_up(self) -> None:
        if not self._caught_up_once:
            self._caught_up_once = True
            for entry in self._cache.every_entry():
                if self._cache.invalidate(entry, self._position, False):
                    self._spawn(self._refresh(entry))
        self._live = True

    def _on_change(self, change: Change) -> None:
        if change.position > self._position:
            self._position = change.position
        for entry, force in self._cache.affected(change):
            if self._cache.invalidate(entry, change.position, force):
                self._spawn(self._refresh(entry))

    def observe_position(self, position: int) -> None:
        """See Client.observe_position."""
        if position > self._position:
            self._position = int(position)

    # -- cache management --------------------------------------------------------------------------
    def invalidate(self, name: str | None = None) -> None:
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
    async def _send(self, call: Call, timeout: float | None = None) -> httpx.Response:
        try:
            r = await self._http.request(call.method, call.path, params=call.params, json=call.json,
                                         headers=call.headers,
                                         timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if r.status_code >= 400:
            raise error_from(r)
        position = r.headers.get("x-event-position")
        if position and position.isdigit() and int(position) > self._position:
            self._position = int(position)
        return r

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                      headers: Mapping[str, str] | None = None) -> Any:
        r = await self._send(Call(method, path, dict(params) if params else None, json,
                                  dict(headers) if headers else None))
        return r.json() if r.content else None

    # -- the write side ----------------------------------------------------------------------------
    async def create_prompt(self, name: str, template: str | None = None, *,
                            messages: Sequence[Mapping[str, Any]] | None = None, template_format: str | None = None,
                            variables: Sequence[Any] | None = None, config: Mapping[str, Any] | None = None,
                            tags: Sequence[str] | None = None, message: str = "",
                            idempotency_key: str | None = None) -> PromptCreated:
        return _calls.parse_created(await self._send(_calls.create_prompt(
            self.org_id, name, template, messages, template_format, variables, config, tags, message,
            idempotency_key)))

    async def revise_prompt(self, prompt_id: str, base_version: int, template: str | None = None, *,
                            messages: Sequence[Mapping[str, Any]] | None = None, template_format: str | None = None,
                            variables: Sequence[Any] | None = None, config: Mapping[str, Any] | None = None,
                            tags: Sequence[str] | None = None, message: str = "",
                            idempotency_key: str | None = None) -> VersionCreated:
        return _calls.parse_version(await self._send(_calls.revise_prompt(
            self.org_id, prompt_id, base_version, template, messages, template_format, variables, config, tags,
            message, idempotency_key)))

    async def move_label(self, prompt_id: str, label: str, version: int | None = None, *,
                         split: Sequence[Mapping[str, int]] | None = None,
                         expected_version: int | None = None) -> LabelMoved:
        return _calls.parse_label(await self._send(_calls.move_label(self.org_id, prompt_id, label, version, split,
                                                                     expected_version)))

    async def request_review(self, prompt_id: str, label: str, version: int | None = None, *, expected_version: int,
                             split: Sequence[Mapping[str, int]] | None = None, remove: bool = False,
                             reason: str = "") -> ReviewRequest:
        return _calls.parse_review(await self._send(_calls.request_review(
            self.org_id, prompt_id, label, version, split, remove, expected_version, reason)))

    async def list_review_requests(self, *, status: str | None = "open",
                                   prompt_id: str | None = None) -> list[ReviewRequest]:
        return _calls.parse_reviews(await self._send(_calls.list_reviews(self.org_id, status, prompt_id,
                                                                         self._position)))

    async def list_prompts(self, *, tag: str | None = None, label: str | None = None, name_prefix: str | None = None,
                           folder: str | None = None, archived: bool | None = False, sort: str | None = None,
                           limit: int | None = None, cursor: str | None = None) -> PromptPage:
        return _calls.parse_page(await self._send(_calls.list_prompts(
            self.org_id, tag=tag, label=label, name_prefix=name_prefix, folder=folder, archived=archived, sort=sort,
            limit=limit, cursor=cursor, min_position=self._position)))

    async def iter_prompts(self, **filters: Any) -> AsyncIterator[PromptSummary]:
        cursor = None
        filters.setdefault("limit", 200)
        while True:
            page = await self.list_prompts(cursor=cursor, **filters)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def search(self, query: str, *, mode: str = "hybrid", limit: int = 10, tags: Sequence[str] | None = None,
                     label: str | None = None, include_archived: bool = False) -> SearchResult:
        return _calls.parse_search(await self._send(_calls.search(self.org_id, query, mode, limit, tags, label,
                                                                  include_archived, self._position)))

    async def get_prompt_info(self, prompt_id: str) -> dict[str, Any]:
        body: dict[str, Any] = (await self._send(_calls.get_prompt_info(self.org_id, prompt_id, self._position))).json()
        return body

    async def get_org(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self._send(_calls.get_org(self.org_id))).json()
        return body

    async def changes(self, after: int = 0, *, limit: int = 100, wait: float = 0) -> ChangePage:
        return _calls.parse_changes(await self._send(_calls.changes(self.org_id, after, limit, wait, self._position),
                                                     timeout=self.timeout + wait if wait else None))


def _fallback_or_raise(key: Key, fallback: Any, error: PromptForgeError) -> Prompt:
    if fallback is None:
        raise error
    return Prompt.fallback(fallback, name=key[1], label=key[2])
