"""The client against a real `promptforge serve`: fetch, local render vs the server's render, ETag/304,
TTL + stale-while-revalidate, fallbacks when the registry is unreachable or stopped, splits,
composition, the write side and its errors, and the async client."""
from __future__ import annotations

import asyncio
import hashlib
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pfc_support import Admin, Org, Recorder, Server, closed_port_url, unique, wait_until
from promptforge_client import ApiError, AsyncClient, Client, RenderError, TransportError


def app_client(server: Server, admin: Admin, org: Org, **kw) -> Client:
    """An application's client that reads (at least) everything the admin wrote."""
    c = Client(server.url, api_key=org.read_key, org_id=org.id, **kw)
    c.observe_position(admin.position)
    return c


def server_render(admin: Admin, org: Org, prompt_id: str, **body) -> dict:
    return admin.call("POST", f"/v1/orgs/{org.id}/prompts/{prompt_id}/render", json=body)


def test_get_prompt_fields_and_local_render_equal_the_servers(server, admin, org):
    tone = admin.prompt(org, "shared/tone", "Be kind and brief.", template_format="mustache")
    admin.move(org, tone["id"], "production", 1)
    name = unique("support/billing/refund")
    created = admin.prompt(
        org, name, "{{> shared/tone}}\nRefund for {{customer.name}}:{{#items}} {{sku}}x{{qty}}{{/items}}"
                   "{{^vip}} (standard){{/vip}} limit={{limit}}",
        variables=[{"name": "customer", "type": "object"}, {"name": "items", "type": "list"},
                   {"name": "vip", "type": "boolean", "default": False}, {"name": "limit", "type": "number", "default": 3}],
        model_config={"model": "gpt-4o-mini", "temperature": 0.2}, tags=["billing", "support"])
    admin.move(org, created["id"], "production", 1)
    with app_client(server, admin, org) as c:
        p = c.get_prompt(name)
        assert (p.type, p.name, p.version, p.label, p.prompt_id) == ("text", name, 1, "production", created["id"])
        assert p.template.startswith("Be kind and brief.\nRefund for")  # the include is resolved
        assert p.config == {"model": "gpt-4o-mini", "temperature": 0.2} == p.model_config
        assert p.tags == ("billing", "support") and p.template_format == "mustache" and not p.is_fallback
        assert [(d.name, d.version, d.label) for d in p.dependencies] == [("shared/tone", 1, "production")]
        assert set(p.variables) == {"customer", "items", "vip", "limit"}
        assert {v["name"]: v["type"] for v in p.variable_schema}["limit"] == "number"
        values = {"customer": {"name": "Zoë"}, "items": [{"sku": "A1", "qty": 2}, {"sku": "B", "qty": 1}]}
        local = p.render(values)
        assert local == server_render(admin, org, created["id"], variables=values, label="production")["text"]
        assert local == "Be kind and brief.\nRefund for Zoë: A1x2 Bx1 (standard) limit=3"
        for bad in ({"customer": "x", "items": []}, {"items": []}, {**values, "extra": 1}):
            with pytest.raises(RenderError) as caught:
                p.render(bad)
            r = admin.http.post(f"/v1/orgs/{org.id}/prompts/{created['id']}/render", json={"variables": bad})
            assert r.status_code == 422
            assert (caught.value.code, caught.value.details) == (r.json()["error"]["code"], r.json()["error"]["details"])


def test_chat_prompt_renders_with_placeholders_like_the_server(server, admin, org):
    name = unique("chat")
    messages = [{"role": "system", "content": "You support {{product}}.{{#vip}} VIP.{{/vip}}"},
                {"type": "placeholder", "name": "history"}, {"role": "user", "content": "{{question}}"}]
    created = admin.prompt(org, name, type="chat", messages=messages)
    admin.move(org, created["id"], "production", 1)
    with app_client(server, admin, org) as c:
        p = c.get_prompt(name)
        assert p.type == "chat" and p.template is None and list(p.messages) == messages
        history = [{"role": "user", "content": "Hi {{product}}"}, {"role": "assistant", "content": "Hello"}]
        values = {"product": "PF", "vip": True, "question": "Refund?"}
        local = p.render(values, placeholders={"history": history})
        remote = server_render(admin, org, created["id"], variables=values, placeholders={"history": history})
        assert local == [{k: v for k, v in m.items() if v is not None} for m in remote["messages"]]
        with pytest.raises(RenderError) as caught:
            p.render({"product": "PF", "vip": False})
        r = admin.http.post(f"/v1/orgs/{org.id}/prompts/{created['id']}/render",
                            json={"variables": {"product": "PF", "vip": False}})
        assert (caught.value.code, caught.value.details) == (r.json()["error"]["code"], r.json()["error"]["details"])


def test_revalidation_sends_the_etag_and_a_304_keeps_the_entry(server, admin, org):
    name = unique("etag")
    pid = admin.prompt(org, name, "one {{x}}")["id"]
    admin.move(org, pid, "production", 1)
    recorder = Recorder()
    with app_client(server, admin, org, ttl=0.5, transport=recorder) as c:
        first = c.get_prompt(name)
        assert first.etag == f'"{pid}:1"'
        time.sleep(0.55)
        assert c.get_prompt(name) is first  # stale: served at once, revalidated behind
        assert wait_until(lambda: len(recorder.fetches()) == 2 and not c.cache_info()["refreshing"])
        request, status = recorder.fetches()[1]
        assert request.headers["if-none-match"] == first.etag and status == 304
        assert c.get_prompt(name).version == 1 and len(recorder.fetches()) == 2  # renewed by the 304
        # a label move: the next revalidation is a 200 with the new version
        admin.revise(org, pid, 1, "two {{x}}")
        admin.move(org, pid, "production", 2)
        c.observe_position(admin.position)
        time.sleep(0.55)
        assert c.get_prompt(name).version == 1  # still the stale copy, at once
        assert wait_until(lambda: c.get_prompt(name).version == 2)
        assert recorder.fetches()[-1][1] == 200 and c.get_prompt(name).render(x=1) == "two 1"


def test_a_version_is_cached_forever_a_label_only_for_its_ttl(server, admin, org):
    name = unique("ver")
    pid = admin.prompt(org, name, "v1")["id"]
    admin.move(org, pid, "production", 1)
    recorder = Recorder()
    with app_client(server, admin, org, ttl=0.05, transport=recorder) as c:
        assert c.get_prompt(name, version=1).version == 1
        c.get_prompt(name)
        time.sleep(0.1)
        for _ in range(20):
            c.get_prompt(name, version=1)
            c.get_prompt(name)
            time.sleep(0.005)
        assert wait_until(lambda: not c.cache_info()["refreshing"])
        by_version = [r for r, _ in recorder.fetches() if r.url.params.get("version") == "1"]
        by_label = [r for r, _ in recorder.fetches() if r.url.params.get("label") == "production"]
        assert len(by_version) == 1 and len(by_label) >= 2


def test_fallback_and_errors_when_the_registry_is_unreachable(org):
    with Client(closed_port_url(), api_key=org.read_key, org_id=org.id, timeout=1.0) as c:
        t = time.perf_counter()
        p = c.get_prompt("anything", fallback={"template": "Hi {{name}}", "config": {"model": "local"}})
        assert p.is_fallback and p.render(name="Ada") == "Hi Ada" and p.config == {"model": "local"}
        with pytest.raises(TransportError) as caught:
            c.get_prompt("anything")
        assert caught.value.code == "NETWORK_ERROR"
        assert time.perf_counter() - t < 2.0


def test_a_stopped_server_never_breaks_the_hot_path(admin):
    """Its own server, stopped and restarted: cached copies keep being served, misses get the
    fallback (or the error), and the client catches up once the server is back."""
    with tempfile.TemporaryDirectory(prefix="pfc-own-") as tmp:
        own = Server(Path(tmp)).start()
        try:
            boss = Admin(own.url)
            o = boss.org()
            pid = boss.prompt(o, "greeting", "Hello {{name}}")["id"]
            boss.move(o, pid, "production", 1)
            with Client(own.url, api_key=o.read_key, org_id=o.id, ttl=0.1, timeout=1.0) as c:
                c.observe_position(boss.position)
                assert c.get_prompt("greeting").version == 1
                own.stop()
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:  # expired, refresh fails: still served, never raises
                    assert c.get_prompt("greeting").render(name="x") == "Hello x"
                    time.sleep(0.01)
                assert c.get_prompt("unknown", fallback="fb").is_fallback
                with pytest.raises(TransportError):
                    c.get_prompt("unknown")
                own.start()
                boss.revise(o, pid, 1, "Welcome {{name}}")
                boss.move(o, pid, "production", 2)
                assert wait_until(lambda: c.get_prompt("greeting").version == 2, timeout=40)
                boss.http.close()
        finally:
            own.stop()


def _bucket(org_id: str, prompt_id: str, label: str, key: str) -> int:
    digest = hashlib.sha256(f"{org_id}:{prompt_id}:{label}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def test_split_keys_are_cached_per_key_and_match_the_documented_hash(server, admin, org):
    name = unique("split")
    pid = admin.prompt(org, name, "A")["id"]
    admin.revise(org, pid, 1, "B")
    admin.call("PUT", f"/v1/orgs/{org.id}/prompts/{pid}/labels/canary",
               json={"split": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]})
    with app_client(server, admin, org) as c:
        for user in (f"user-{i}" for i in range(12)):
            expected = 1 if _bucket(org.id, pid, "canary", user) < 50 else 2
            p = c.get_prompt(name, "canary", split_key=user)
            assert p.version == expected and c.get_prompt(name, "canary", split_key=user) is p
            assert p.split == ({"version": 1, "weight": 50}, {"version": 2, "weight": 50})


def test_write_side_and_its_errors(server, admin, org):
    name = unique("support/write")
    with Client(server.url, api_key=org.key, org_id=org.id) as c:
        created = c.create_prompt(name, "Hello {{name}}", tags=["Support"], config={"model": "m"},
                                  idempotency_key=f"{name}-1")
        assert created.version == 1 and created.name == name and not created.replayed
        again = c.create_prompt(name, "Hello {{name}}", tags=["Support"], config={"model": "m"},
                                idempotency_key=f"{name}-1")
        assert again.id == created.id and again.replayed
        revised = c.revise_prompt(created.id, 1, "Hi {{name}}", message="shorter")
        assert revised.version == 2
        with pytest.raises(ApiError) as caught:
            c.revise_prompt(created.id, 1, "stale base")
        err = caught.value
        assert (err.code, err.status, err.details["current_version"]) == ("PROMPT_VERSION_CONFLICT", 409, 2)
        assert err.request_id and err.message
        moved = c.move_label(created.id, "staging", 2, expected_version=0)
        assert (moved.label, moved.version) == ("staging", 2) and moved.position > 0
        with pytest.raises(ApiError) as caught:
            c.move_label(created.id, "staging", 1, expected_version=1)
        assert caught.value.code == "LABEL_CONFLICT"
        # read-your-writes: the next read waits for the write's position
        assert c.get_prompt(name, "staging").render(name="Ada") == "Hi Ada"
        page = c.list_prompts(name_prefix=name)
        assert [s.name for s in page.items] == [name] and page.items[0].labels["staging"] == 2
        assert page.items[0].tags == ["support"]
        assert [s.id for s in c.iter_prompts(folder="support")] == [created.id]
        found = c.search("Hi", mode="keyword")
        assert created.id in [h.prompt_id for h in found.items]
        chat = c.create_prompt(unique("chat"), messages=[{"role": "user", "content": "{{q}}"}])
        assert chat.version == 1
        info = c.get_prompt_info(chat.id)
        assert info["type"] == "chat"
    with Client(server.url, api_key=org.read_key, org_id=org.id) as reader:
        with pytest.raises(ApiError) as caught:
            reader.create_prompt(unique("nope"), "x")
        assert caught.value.code == "PERMISSION_DENIED" and caught.value.status == 403


def test_protected_label_moves_go_through_review_requests(server, admin):
    org = admin.org(protected=True)
    name = unique("guarded")
    with Client(server.url, api_key=org.key, org_id=org.id) as c:
        created = c.create_prompt(name, "v1")
        with pytest.raises(ApiError) as caught:
            c.move_label(created.id, "production", 1, expected_version=0)
        assert caught.value.code == "LABEL_PROTECTED"
        review = c.request_review(created.id, "production", 1, expected_version=0, reason="ship it")
        assert review.status == "open" and review.id
        assert [r.id for r in c.list_review_requests(prompt_id=created.id)] == [review.id]


def test_async_client_against_the_real_server(server, admin, org):
    name = unique("async")
    pid = admin.prompt(org, name, "one {{x}}")["id"]
    admin.move(org, pid, "production", 1)

    async def main():
        async with AsyncClient(server.url, api_key=org.key, org_id=org.id, ttl=0.1) as c:
            c.observe_position(admin.position)
            p = await c.get_prompt(name)
            assert p.render(x=1) == "one 1" and (await c.get_prompt(name)) is p
            await c.revise_prompt(pid, 1, "two {{x}}")
            await c.move_label(pid, "production", 2, expected_version=1)
            await asyncio.sleep(0.12)
            assert (await c.get_prompt(name)).version == 1  # stale, at once
            for _ in range(500):
                if (await c.get_prompt(name)).version == 2:
                    break
                await asyncio.sleep(0.01)
            assert (await c.get_prompt(name)).version == 2
            assert [s.name async for s in c.iter_prompts(name_prefix=name)] == [name]
            with pytest.raises(ApiError) as caught:
                await c.move_label(pid, "production", 1, expected_version=1)
            assert caught.value.code == "LABEL_CONFLICT"
        async with AsyncClient(closed_port_url(), api_key=org.key, org_id=org.id, timeout=1.0) as down:
            assert (await down.get_prompt(name, fallback="fb")).is_fallback
            with pytest.raises(TransportError):
                await down.get_prompt(name)

    asyncio.run(main())


def test_token_auth_and_change_feed_page(server, admin, org):
    name = unique("token")
    pid = admin.prompt(org, name, "t")["id"]
    with Client(server.url, token=admin.token, org_id=org.id) as c:
        c.observe_position(admin.position)
        assert c.get_prompt(name, "latest").prompt_id == pid
        page = c.changes(after=0, limit=1000)
        assert any(ch.type == "prompt.created" and ch.prompt_id == pid for ch in page.items)
        assert c.changes(after=page.next, wait=0.2).items == []


def test_one_revalidation_per_key_and_one_fetch_per_concurrent_miss(server, admin, org):
    name = unique("herd")
    pid = admin.prompt(org, name, "x")["id"]
    admin.move(org, pid, "production", 1)
    recorder = Recorder()
    with app_client(server, admin, org, ttl=1.0, transport=recorder) as c:
        barrier = threading.Barrier(8)
        results = []

        def hammer():
            barrier.wait()
            results.extend(c.get_prompt(name) for _ in range(300))

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(recorder.fetches()) == 1 and len({id(p) for p in results}) == 1  # one fetch for 8 racing misses
        time.sleep(1.05)
        barrier = threading.Barrier(8)
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wait_until(lambda: not c.cache_info()["refreshing"])
        assert [s for _, s in recorder.fetches()] == [200, 304]  # one revalidation for 2,400 stale hits


def test_registry_answers_that_are_not_outages_raise_even_with_a_fallback(server, admin, org):
    with app_client(server, admin, org) as c:
        with pytest.raises(ApiError) as caught:
            c.get_prompt(unique("missing"), fallback="never used")
        assert (caught.value.code, caught.value.status) == ("PROMPT_NOT_FOUND", 404) and caught.value.request_id
    with Client(server.url, api_key="pfk_not_a_real_key", org_id=org.id) as c:
        with pytest.raises(ApiError) as caught:
            c.get_prompt("x", fallback="never used")
        assert caught.value.status == 401


def test_a_removed_label_is_dropped_after_its_ttl_or_at_once_when_watching(server, admin, org):
    name = unique("removed")
    pid = admin.prompt(org, name, "x")["id"]
    admin.move(org, pid, "staging", 1)
    admin.move(org, pid, "qa", 1)
    with app_client(server, admin, org, ttl=0.1) as ttl_client, app_client(server, admin, org, watch=True, ttl=3600) as watcher:
        assert watcher.wait_until_watching(10)
        assert ttl_client.get_prompt(name, "staging").version == 1
        assert watcher.get_prompt(name, "qa").version == 1
        admin.call("DELETE", f"/v1/orgs/{org.id}/prompts/{pid}/labels/staging")
        admin.call("DELETE", f"/v1/orgs/{org.id}/prompts/{pid}/labels/qa")
        time.sleep(0.12)
        assert ttl_client.get_prompt(name, "staging").version == 1  # served while the refresh runs
        assert wait_until(lambda: ttl_client.cache_info()["entries"] == 0)
        assert wait_until(lambda: watcher.cache_info()["entries"] == 0, timeout=2)
        for c, label in ((ttl_client, "staging"), (watcher, "qa")):
            with pytest.raises(ApiError) as caught:
                c.get_prompt(name, label)
            assert caught.value.code == "LABEL_NOT_FOUND"
