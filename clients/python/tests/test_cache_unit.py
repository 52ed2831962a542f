"""The cache's timing rules against a stub transport (httpx.MockTransport): what is served when, which
requests go out. Every behaviour here is covered against the real server too (test_integration.py)."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from promptforge_client import ApiError, AsyncClient, Client, TransportError

ORG = "00000000-0000-0000-0000-00000000000a"
PID = "11111111-1111-1111-1111-111111111111"


class Registry:
    """A stub registry: one prompt whose served version the test changes; records every request."""

    def __init__(self):
        self.version = 1
        self.requests: list[httpx.Request] = []
        self.fail: str | None = None  # "network" | "500" | "404" | None
        self.delay = 0.0
        self.lock = threading.Lock()

    def body(self, version: int, label: str | None) -> dict:
        return {"prompt_id": PID, "name": "greet", "version": version, "label": label, "type": "text",
                "template": f"v{version} {{{{name}}}}", "messages": None, "template_format": "mustache",
                "variables": ["name"], "variable_schema": None, "resolved": True, "split": None, "dependencies": [],
                "model_config": {"model": "m"}, "tags": ["t"], "as_of": None}

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        if self.fail == "network":
            raise httpx.ConnectError("refused", request=request)
        if self.fail == "500":
            return httpx.Response(500, json={"error": {"code": "INTERNAL_ERROR", "message": "boom", "details": {}},
                                             "request_id": "r1"})
        if self.fail == "404":
            return httpx.Response(404, json={"error": {"code": "LABEL_NOT_FOUND", "message": "gone",
                                                       "details": {"label": "production"}}, "request_id": "r2"})
        version = int(request.url.params.get("version") or self.version)
        tag = f'"{PID}:{version}"'
        if request.headers.get("if-none-match") == tag:
            return httpx.Response(304, headers={"ETag": tag})
        label = None if request.url.params.get("version") else request.url.params.get("label", "latest")
        return httpx.Response(200, json=self.body(version, label), headers={"ETag": tag})

    def fetches(self) -> list[httpx.Request]:
        return [r for r in self.requests if "/by-name/" in r.url.path]


@pytest.fixture
def registry():
    return Registry()


def client(registry: Registry, **kw) -> Client:
    return Client("http://registry.test", api_key="pfk_test", org_id=ORG, transport=httpx.MockTransport(registry.handler),
                  **kw)


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return False


def test_a_hit_does_no_io(registry):
    with client(registry) as c:
        first = c.get_prompt("greet")
        for _ in range(1000):
            assert c.get_prompt("greet") is first
        assert len(registry.fetches()) == 1
        request = registry.fetches()[0]
        assert request.url.path == f"/v1/orgs/{ORG}/prompts/by-name/greet"
        assert request.url.params["label"] == "production"
        assert request.headers["authorization"] == "Bearer pfk_test"
        assert first.render(name="Ada") == "v1 Ada" and first.config == {"model": "m"} and first.tags == ("t",)


def test_keys_are_separate(registry):
    with client(registry) as c:
        c.get_prompt("greet")
        c.get_prompt("greet", "staging")
        c.get_prompt("greet", version=1)
        c.get_prompt("greet", split_key="user-1")
        c.get_prompt("greet", split_key="user-2")
        c.get_prompt("greet", org_id="00000000-0000-0000-0000-00000000000b")
        assert len(registry.fetches()) == 6
        assert registry.fetches()[2].url.params["version"] == "1" and "label" not in registry.fetches()[2].url.params
        assert registry.fetches()[3].url.params["split_key"] == "user-1"


def test_expired_label_is_served_at_once_and_revalidated_in_the_background(registry):
    with client(registry, ttl=0.05) as c:
        assert c.get_prompt("greet").version == 1
        registry.version = 2
        registry.delay = 0.2  # a slow registry: the caller must not wait for it
        time.sleep(0.06)
        t = time.perf_counter()
        assert c.get_prompt("greet").version == 1  # stale, served at once
        assert time.perf_counter() - t < 0.05
        assert wait_for(lambda: c.get_prompt("greet").version == 2)
        assert registry.fetches()[-1].headers["if-none-match"] == f'"{PID}:1"'


def test_a_304_keeps_the_entry_and_renews_it(registry):
    with client(registry, ttl=0.5) as c:
        first = c.get_prompt("greet")
        time.sleep(0.51)
        c.get_prompt("greet")
        assert wait_for(lambda: len(registry.fetches()) == 2 and not c.cache_info()["refreshing"])
        assert c.get_prompt("greet").etag == first.etag and c.get_prompt("greet").version == 1
        assert len(registry.fetches()) == 2  # renewed: fresh again, no third request
        assert registry.fetches()[1].headers["if-none-match"] == first.etag


def test_one_refresh_per_key_at_a_time(registry):
    with client(registry, ttl=0.5) as c:
        c.get_prompt("greet")
        registry.delay = 0.2
        time.sleep(0.51)
        threads = [threading.Thread(target=lambda: [c.get_prompt("greet") for _ in range(200)]) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wait_for(lambda: not c.cache_info()["refreshing"])
        assert len(registry.fetches()) == 2


def test_concurrent_misses_fetch_once(registry):
    registry.delay = 0.1
    with client(registry) as c:
        results = []
        threads = [threading.Thread(target=lambda: results.append(c.get_prompt("greet"))) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 6 and len(registry.fetches()) == 1


@pytest.mark.parametrize("failure", ["network", "500"])
def test_refresh_failures_serve_the_last_good_copy(registry, failure):
    with client(registry, ttl=0.02) as c:
        c.get_prompt("greet")
        registry.fail = failure
        for _ in range(50):
            time.sleep(0.005)
            assert c.get_prompt("greet").version == 1  # never raises while a copy exists
        attempts = len(registry.fetches())
        assert 2 <= attempts <= 6  # retried with backoff, not on every call
        registry.fail, registry.version = None, 2
        time.sleep(1.2)  # past the backoff
        assert wait_for(lambda: c.get_prompt("greet").version == 2)


@pytest.mark.parametrize("failure", ["network", "500"])
def test_a_miss_without_the_registry_gives_the_fallback_or_raises(registry, failure):
    registry.fail = failure
    with client(registry) as c:
        fb = c.get_prompt("greet", fallback="Hello {{name}}")
        assert fb.is_fallback and fb.version is None and fb.name == "greet" and fb.label == "production"
        assert fb.render(name="Ada") == "Hello Ada"
        chat = c.get_prompt("greet", fallback=[{"role": "system", "content": "Hi {{who}}"}])
        assert chat.type == "chat" and chat.render(who="x") == [{"role": "system", "content": "Hi x"}]
        requests = len(registry.fetches())
        assert requests == 1  # the failure is remembered: no new attempt within the backoff
        with pytest.raises((TransportError, ApiError)) as caught:
            c.get_prompt("greet")
        assert caught.value.code == ("NETWORK_ERROR" if failure == "network" else "INTERNAL_ERROR")
        if failure == "500":
            assert caught.value.request_id == "r1" and caught.value.status == 500
        registry.fail = None
        time.sleep(1.0)
        assert not c.get_prompt("greet").is_fallback


def test_client_errors_raise_even_with_a_fallback(registry):
    registry.fail = "404"
    with client(registry) as c:
        with pytest.raises(ApiError) as caught:
            c.get_prompt("greet", fallback="x")
        assert caught.value.code == "LABEL_NOT_FOUND" and caught.value.details == {"label": "production"}
        assert caught.value.request_id == "r2"


def test_a_version_is_cached_forever(registry):
    with client(registry, ttl=0.01) as c:
        c.get_prompt("greet", version=1)
        time.sleep(0.05)
        for _ in range(10):
            c.get_prompt("greet", version=1)
        time.sleep(0.05)
        assert len(registry.fetches()) == 1


def test_a_label_that_is_gone_is_dropped(registry):
    with client(registry, ttl=0.02) as c:
        c.get_prompt("greet")
        registry.fail = "404"
        time.sleep(0.03)
        assert c.get_prompt("greet").version == 1  # served while the refresh runs
        assert wait_for(lambda: c.cache_info()["entries"] == 0)
        with pytest.raises(ApiError):
            c.get_prompt("greet")


def test_async_client_same_rules(registry):
    async def main():
        async with AsyncClient("http://registry.test", api_key="k", org_id=ORG, ttl=0.05,
                               transport=httpx.MockTransport(registry.handler)) as c:
            first = await c.get_prompt("greet")
            assert (await c.get_prompt("greet")) is first
            registry.version = 2
            await asyncio.sleep(0.06)
            assert (await c.get_prompt("greet")).version == 1
            for _ in range(200):
                if (await c.get_prompt("greet")).version == 2:
                    break
                await asyncio.sleep(0.005)
            assert (await c.get_prompt("greet")).version == 2
            registry.fail = "network"
            fb = await c.get_prompt("other", fallback={"template": "x {{y}}", "template_format": "mustache"})
            assert fb.is_fallback and fb.render(y=1) == "x 1"
            await asyncio.sleep(0.06)
            assert (await c.get_prompt("greet")).version == 2  # stale copy, no raise
            with pytest.raises(TransportError):
                await c.get_prompt("never")

    asyncio.run(main())


def test_stub_sse_stream_invalidates_exactly_the_affected_entries(registry):
    """The watcher's wiring, against a scripted stream (the real feed: test_watch.py)."""
    events = threading.Event()
    change = {"position": 7, "at": "2026-01-01T00:00:00Z", "type": "prompt.label_moved", "audience": "prompts",
              "prompt_id": PID, "name": "greet", "version": 2, "label": "production", "actor": "user:x",
              "details": {"from_version": 1, "to_version": 2}}
    other = dict(change, position=8, prompt_id="22222222-2222-2222-2222-222222222222", name="other")
    staging = dict(change, position=9, label="staging")  # same prompt, a label nothing cached uses

    def stream_body():
        yield b": connected\n\n: caught-up\n\n"
        events.wait(5)
        yield f"id: 7\nevent: prompt.label_moved\ndata: {json.dumps(change)}\n\n".encode()
        yield f"id: 8\nevent: prompt.label_moved\ndata: {json.dumps(other)}\n\n".encode()
        yield f"id: 9\nevent: prompt.label_moved\ndata: {json.dumps(staging)}\n\n".encode()
        time.sleep(5)  # the stream stays open

    def handler(request):
        if request.url.path.endswith("/changes/stream"):
            registry.requests.append(request)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream_body())
        return registry.handler(request)

    with Client("http://registry.test", api_key="k", org_id=ORG, transport=httpx.MockTransport(handler),
                watch=True, ttl=3600) as c:
        assert c.wait_until_watching(5)
        assert c.get_prompt("greet").version == 1
        assert c.get_prompt("greet", version=1).version == 1
        registry.version = 2
        events.set()
        assert wait_for(lambda: c.get_prompt("greet").version == 2)
        time.sleep(0.1)
        refresh = registry.fetches()[-1]
        assert refresh.url.params["min_position"] == "7"  # reads at least what the feed announced
        # exactly one refresh: not the version entry, not for another prompt or another label
        assert len(registry.fetches()) == 3
        assert c.get_prompt("greet", version=1).version == 1


def test_a_change_the_entry_already_shows_refreshes_nothing(registry):
    """The feed's read model may trail the catalogue: a change can arrive after a fetch that asked
    for a later position (the client's own write, or `observe_position`). That entry already shows
    it: no refresh. A later change still refreshes it."""
    release = threading.Event()
    late = {"position": 7, "at": "2026-01-01T00:00:00Z", "type": "prompt.label_moved", "audience": "prompts",
            "prompt_id": PID, "name": "greet", "version": 1, "label": "production", "actor": "user:x",
            "details": {"from_version": None, "to_version": 1}}
    later = dict(late, position=11, version=2, details={"from_version": 1, "to_version": 2})

    def stream_body():
        yield b": connected\n\n: caught-up\n\n"
        release.wait(5)
        yield f"id: 7\nevent: prompt.label_moved\ndata: {json.dumps(late)}\n\n".encode()
        release.clear()
        release.wait(5)
        yield f"id: 11\nevent: prompt.label_moved\ndata: {json.dumps(later)}\n\n".encode()
        time.sleep(5)

    def handler(request):
        if request.url.path.endswith("/changes/stream"):
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream_body())
        return registry.handler(request)

    with Client("http://registry.test", api_key="k", org_id=ORG, transport=httpx.MockTransport(handler),
                watch=True, ttl=3600) as c:
        assert c.wait_until_watching(5)
        c.observe_position(10)
        assert c.get_prompt("greet").position == 10
        release.set()
        assert wait_for(lambda: c._last_event_id == 7)
        time.sleep(0.1)
        assert len(registry.fetches()) == 1  # the copy read at 10 already shows the change at 7
        registry.version = 2
        release.set()
        assert wait_for(lambda: c.get_prompt("greet").version == 2)
        assert [r.url.params["min_position"] for r in registry.fetches()] == ["10", "11"]


def test_change_feed_pages_read_the_writes_the_client_has_seen(registry):
    """A page of the feed passes the position this client has observed as min_position (the feed is
    its own read model and may trail the catalogue a moment), on the sync and async clients alike."""

    def handler(request):
        registry.requests.append(request)
        return httpx.Response(200, json={"items": [], "next": 0})

    with Client("http://registry.test", api_key="k", org_id=ORG, transport=httpx.MockTransport(handler)) as c:
        c.changes()
        assert "min_position" not in registry.requests[-1].url.params  # nothing written yet: no wait
        c.observe_position(42)
        c.changes(after=3)
        assert registry.requests[-1].url.params["min_position"] == "42"

    async def main():
        async with AsyncClient("http://registry.test", api_key="k", org_id=ORG,
                               transport=httpx.MockTransport(handler)) as c:
            c.observe_position(43)
            await c.changes()
            assert registry.requests[-1].url.params["min_position"] == "43"

    asyncio.run(main())
