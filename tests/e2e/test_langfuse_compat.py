"""The Langfuse-compatible prompt API (adr/0015), driven by the real `langfuse` SDK against a real server.

Every module's world runs on SQLite and on Postgres: one organisation with `production` protected
(the product default), an owner and a reviewer, the owner's keys, and a foreign
organisation holding prompts of the same names. The SDK talks HTTP to uvicorn (a thread, a free
port) with tracing disabled (`tracing_enabled=False`); what the server says about tracing endpoints
is checked with plain HTTP and once with tracing on.
"""
from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from langfuse import Langfuse
from langfuse.api import AccessDeniedError, NotFoundError, UnauthorizedError
from langfuse.api.core.api_error import ApiError as LangfuseApiError

from interfaces.http.app import create_app
from interfaces.http.compat import langfuse as compat
from interfaces.http.compat.langfuse_views import template_format
from tests.e2e.support import Api, Key, User
from tests.support.waiting import serving as serving_app

PROMPT_KEYS = {"type", "name", "version", "prompt", "config", "labels", "tags", "commitMessage", "resolutionGraph"}
META_KEYS = {"name", "type", "versions", "labels", "tags", "lastUpdatedAt", "lastConfig"}
#: The read models the assertions read (`settle` waits for these only).
READ_MODELS = ("catalogue", "api_keys", "audit", "changes", "reviews")


def with_compat(app):
    """The app, serving the compatibility router (included here unless `register()` already does)."""
    if not any(getattr(c, "path", "").startswith("/api/public/") for c in iter_route_contexts(list(app.routes))):
        app.include_router(compat.router)
    return app


def serving(container):
    """The app over `container`, with the compatibility router, on a real uvicorn server (the SDK needs a socket)."""
    return serving_app(with_compat(create_app(container)))


def prefix(key: Key) -> str:
    return "pfk_" + key.raw.split("_")[1][:8]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def auth(key: Key) -> dict[str, str]:
    return basic(prefix(key), key.raw)


@dataclass
class World:
    api: Api
    base: str
    org: str
    owner: User
    reviewer: User
    writer: Key  # owner's key: read, write, promote
    reader: Key  # owner's key: read only
    dev_key: Key  # read, write (what a developer may do)
    foreign: str
    foreign_key: Key
    clients: list = field(default_factory=list)

    def sdk(self, key: Key, base: str | None = None, **kw) -> Langfuse:
        client = Langfuse(public_key=prefix(key), secret_key=key.raw, host=base or self.base, tracing_enabled=False,
                          **kw)
        self.clients.append(client)
        return client

    def http(self, method: str, path: str, key: Key | None = None, **kw) -> httpx.Response:
        headers = {**(auth(key) if key else {}), **kw.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kw)

    def settle(self) -> int:
        """Wait for the read models these tests read to reach the head of the log."""
        head = self.api.container.app.head_position()
        assert self.api.container.supervisor.wait_for(head, 10, list(READ_MODELS))
        self.api.position = max(self.api.position, head)
        return head


@pytest.fixture(scope="module")
def lf(module_api):
    api = module_api
    with_compat(api.app)
    owner, reviewer = api.user("owner"), api.user("reviewer")
    org = api.org(owner, protected=True)
    assert api.patch(f"/v1/orgs/{org}", json={"plan": "PRO"}, headers=owner.h).status_code == 200  # keys: > 3
    api.add(owner, org, reviewer, "reviewer")
    writer = api.key(owner, org, ["prompts:read", "prompts:write", "prompts:promote"], name="ci")
    reader = api.key(owner, org, ["prompts:read"], name="app")
    dev_key = api.key(owner, org, ["prompts:read", "prompts:write"], name="dev")  # a developer's rights
    stranger = api.user("stranger")
    foreign = api.org(stranger, "Foreign")
    foreign_key = api.key(stranger, foreign, ["prompts:read", "prompts:write"], name="foreign")
    with serving(api.container) as base:
        world = World(api, base, org, owner, reviewer, writer, reader, dev_key, foreign, foreign_key)
        yield world
        for client in world.clients:
            client.shutdown()


# -- reading and writing with the SDK -------------------------------------------------------------

def test_text_prompt_by_label_version_and_default_production(lf):
    sdk = lf.sdk(lf.writer)
    first = sdk.create_prompt(name="support/refund-reply", prompt="Refund {{order}} for {{customer}}",
                              labels=["staging"], tags=["support"], config={"model": "gpt-4o-mini", "temperature": 0.2},
                              commit_message="first draft")
    assert (first.version, first.labels, first.tags, first.commit_message) == (1, ["staging", "latest"], ["support"],
                                                                               "first draft")
    assert first.config == {"model": "gpt-4o-mini", "temperature": 0.2}
    second = sdk.create_prompt(name="support/refund-reply", prompt="Kindly refund {{order}} for {{customer}}",
                               labels=["staging"], commit_message="kinder")
    assert (second.version, second.labels, second.tags, second.config) == (2, ["staging", "latest"], ["support"], {})

    staging = sdk.get_prompt("support/refund-reply", label="staging", cache_ttl_seconds=0)
    assert staging.version == 2 and not staging.is_fallback
    assert staging.compile(order="#42", customer="Ada") == "Kindly refund #42 for Ada"
    one = sdk.get_prompt("support/refund-reply", version=1, cache_ttl_seconds=0)
    assert (one.version, one.labels, one.tags, one.commit_message) == (1, [], ["support"], "first draft")
    assert one.config == {"model": "gpt-4o-mini", "temperature": 0.2} and one.variables == ["order", "customer"]
    with pytest.raises(NotFoundError):  # no label and no version: production, not set yet
        sdk.get_prompt("support/refund-reply", cache_ttl_seconds=0, max_retries=0)
    # PromptForge holds an ordinary prompt: mustache, model_config, commit messages
    lf.settle()
    native = lf.api.q(f"/v1/orgs/{lf.org}/prompts/by-name/support/refund-reply", lf.owner, params={"version": 1}).json()
    assert native["template_format"] == "mustache" and native["model_config"]["model"] == "gpt-4o-mini"
    assert native["variables"] == ["order", "customer"] and native["tags"] == ["support"]


def test_the_answers_have_langfuses_documented_shapes(lf):
    lf.sdk(lf.writer).create_prompt(name="shapes/one", prompt="Hi {{name}}", labels=["staging"])
    for path in ("/api/public/v2/prompts/shapes%2Fone?label=staging", "/api/public/v2/prompts/shapes/one?version=1"):
        r = lf.http("GET", path, lf.reader)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        assert set(r.json()) == PROMPT_KEYS, r.json()
        assert r.json() == {"type": "text", "name": "shapes/one", "version": 1, "prompt": "Hi {{name}}", "config": {},
                            "labels": ["staging", "latest"], "tags": [], "commitMessage": None,
                            "resolutionGraph": None}
    listed = lf.http("GET", "/api/public/v2/prompts", lf.reader, params={"name": "shapes/one"}).json()
    assert set(listed) == {"data", "meta"} and listed["meta"] == {"page": 1, "limit": 10, "totalItems": 1,
                                                                   "totalPages": 1}
    assert set(listed["data"][0]) == META_KEYS
    assert listed["data"][0]["versions"] == [1] and listed["data"][0]["labels"] == ["staging", "latest"]
    missing = lf.http("GET", "/api/public/v2/prompts/shapes%2Fnone", lf.reader)
    assert missing.status_code == 404
    assert missing.json() == {"message": "Prompt not found: 'shapes/none' with label 'production'",
                              "error": "LangfuseNotFoundError"}
    both = lf.http("GET", "/api/public/v2/prompts/shapes%2Fone?version=1&label=staging", lf.reader)
    assert both.status_code == 400 and both.json()["error"] == "InvalidRequestError"


def test_chat_prompt_with_placeholders(lf):
    sdk = lf.sdk(lf.writer)
    messages = [{"role": "system", "content": "You support {{product}}."}, {"type": "placeholder", "name": "history"},
                {"role": "user", "content": "{{question}}"}]
    created = sdk.create_prompt(name="support/chat", type="chat", prompt=messages, labels=["staging"],
                                config={"temperature": 0})
    assert created.version == 1 and created.labels == ["staging", "latest"]
    got = sdk.get_prompt("support/chat", type="chat", label="staging", cache_ttl_seconds=0)
    assert got.prompt == [{"type": "message", "role": "system", "content": "You support {{product}}."},
                          {"type": "placeholder", "name": "history"},
                          {"type": "message", "role": "user", "content": "{{question}}"}]
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert got.compile(product="Acme", question="Where is my order?", history=history) == [
        {"role": "system", "content": "You support Acme."}, *history,
        {"role": "user", "content": "Where is my order?"}]
    raw = lf.http("GET", "/api/public/v2/prompts/support%2Fchat?label=staging", lf.reader).json()
    assert raw["type"] == "chat" and raw["prompt"] == messages and raw["config"] == {"temperature": 0}
    lf.settle()
    native = lf.api.q(f"/v1/orgs/{lf.org}/prompts/by-name/support/chat", lf.owner).json()
    assert native["type"] == "chat"
    assert [{k: v for k, v in m.items() if v is not None} for m in native["messages"]] == messages
    with pytest.raises(LangfuseApiError) as refused:  # a text version of a chat prompt, as Langfuse refuses
        sdk.create_prompt(name="support/chat", prompt="plain text now")
    assert refused.value.status_code == 400 and "PROMPT_TYPE_MISMATCH" in refused.value.body["message"]


def test_update_prompt_moves_new_labels_and_keeps_the_others(lf):
    sdk = lf.sdk(lf.writer)
    for text in ("v1 {{x}}", "v2 {{x}}"):
        sdk.create_prompt(name="moves/p", prompt=text, labels=["staging"])
    updated = sdk.update_prompt(name="moves/p", version=1, new_labels=["staging", "canary"])
    assert (updated.version, updated.labels) == (1, ["canary", "staging"])
    assert sdk.get_prompt("moves/p", label="staging", cache_ttl_seconds=0).version == 1
    again = sdk.update_prompt(name="moves/p", version=1, new_labels=["beta"])
    assert again.labels == ["beta", "canary", "staging"]  # Langfuse adds; it never removes
    r = lf.http("PATCH", "/api/public/v2/prompts/moves%2Fp/versions/2", lf.writer, json={"newLabels": ["canary"]})
    assert r.status_code == 200 and set(r.json()) == PROMPT_KEYS and r.json()["labels"] == ["canary", "latest"]
    assert int(r.headers["x-event-position"]) > 0
    assert lf.http("PATCH", "/api/public/v2/prompts/moves%2Fp/versions/9", lf.writer,
                   json={"newLabels": ["x"]}).status_code == 404
    bad = lf.http("PATCH", "/api/public/v2/prompts/moves%2Fp/versions/1", lf.writer, json={"labels": ["x"]})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidRequestError"


def test_folder_names_url_encoded_or_not(lf):
    sdk = lf.sdk(lf.writer)
    sdk.create_prompt(name="billing/eu/vat-reply", prompt="VAT for {{country}}", labels=["staging"])
    got = sdk.get_prompt("billing/eu/vat-reply", label="staging", cache_ttl_seconds=0)
    assert got.name == "billing/eu/vat-reply" and got.compile(country="FR") == "VAT for FR"
    for path in ("billing%2Feu%2Fvat-reply", "billing/eu/vat-reply"):
        assert lf.http("GET", f"/api/public/v2/prompts/{path}?label=staging", lf.reader).json()["version"] == 1
    assert sdk.update_prompt(name="billing/eu/vat-reply", version=1, new_labels=["beta"]).labels[0] == "beta"


def test_formats_keep_langfuse_semantics(lf):
    assert template_format(["Hi {{ name }}, {{x_1}}", "no tags", "{{ unclosed"]) == "mustache"
    for text in ("{{#each items}}{{.}}{{/each}}", "{{a.b}}", "{{> other}}", "{{ two words }}", "{{{x}}}", "{{}}"):
        assert template_format([text]) == "plain", text
    sdk = lf.sdk(lf.writer)
    created = sdk.create_prompt(name="formats/handlebars", prompt="{{#each items}}{{name}}{{/each}} for {{who}}",
                                labels=["staging"])
    assert created.compile(who="Ada") == "{{#each items}}{{name}}{{/each}} for Ada"  # the SDK's own rules
    lf.settle()
    native = lf.api.q(f"/v1/orgs/{lf.org}/prompts/by-name/formats/handlebars", lf.owner).json()
    assert native["template_format"] == "plain" and native["template"].startswith("{{#each items}}")


# -- the SDK's cache and fallback -----------------------------------------------------------------

def test_cache_ttl_stale_cache_and_fallback_when_the_server_is_down(lf):
    writer = lf.sdk(lf.writer)
    for text in ("cached v1 {{x}}", "cached v2 {{x}}"):
        writer.create_prompt(name="cache/p", prompt=text, labels=["staging"])
    writer.update_prompt(name="cache/p", version=1, new_labels=["staging"])
    key = lf.api.key(lf.owner, lf.org, ["prompts:read"], name="cache")  # a client (and cache) of its own
    with serving(lf.api.container) as base:
        sdk = lf.sdk(key, base)
        assert sdk.get_prompt("cache/p", label="staging", cache_ttl_seconds=60).version == 1
        writer.update_prompt(name="cache/p", version=2, new_labels=["staging"])
        lf.settle()
        assert sdk.get_prompt("cache/p", label="staging", cache_ttl_seconds=60).version == 1  # from the cache
        assert sdk.get_prompt("cache/p", label="staging", cache_ttl_seconds=0).version == 2  # cache disabled
        assert sdk.get_prompt("cache/p", version=1, cache_ttl_seconds=1).version == 1
    time.sleep(1.2)  # the server is down and the cached version 1 has expired
    stale = sdk.get_prompt("cache/p", version=1, cache_ttl_seconds=1, max_retries=0)
    assert stale.version == 1 and not stale.is_fallback  # the expired copy, refreshed in the background
    fallback = sdk.get_prompt("cache/never-fetched", fallback="Hello {{name}}", max_retries=0)
    assert fallback.is_fallback and fallback.compile(name="Ada") == "Hello Ada"
    with pytest.raises(Exception):  # no cache, no fallback: the connection error
        sdk.get_prompt("cache/never-fetched", max_retries=0)


# -- credentials, permissions, protected labels -----------------------------------------------------

def test_wrong_malformed_and_revoked_credentials_are_401(lf):
    def refused(headers):
        r = httpx.get(lf.base + "/api/public/v2/prompts", headers=headers, timeout=10)
        assert r.status_code == 401 and r.json()["error"] == "UnauthorizedError", r.text
        assert set(r.json()) == {"message", "error"} and r.headers["www-authenticate"].startswith("Basic")
        return r.json()["message"]

    refused({})
    refused({"Authorization": f"Bearer {lf.reader.raw}"})
    refused({"Authorization": "Basic !!!"})
    refused(basic(prefix(lf.reader), lf.reader.raw[:-2] + "xx"))
    assert "prefix" in refused(basic(prefix(lf.writer), lf.reader.raw))  # another key's username
    refused(basic(prefix(lf.reader), "not-a-key"))
    victim = lf.api.key(lf.owner, lf.org, ["prompts:read"], name="victim")  # the SDK keeps one client per public key
    with pytest.raises(UnauthorizedError):
        lf.sdk(Key(victim.id, victim.raw[:-2] + "xx")).get_prompt("any", label="staging", max_retries=0)

    key = lf.api.key(lf.owner, lf.org, ["prompts:read"], name="soon-revoked")
    assert lf.http("GET", "/api/public/v2/prompts", key).status_code == 200
    assert lf.http("GET", "/api/public/projects", key).json()["data"][0]["id"] == lf.org
    assert lf.sdk(key).auth_check() is True
    listed = lf.api.q(f"/v1/orgs/{lf.org}/api-keys", lf.owner).json()["items"]
    assert prefix(key) in {k["prefix"] for k in listed}  # the username is the prefix PromptForge shows
    r = lf.api.delete(f"/v1/orgs/{lf.org}/api-keys/{key.id}", headers=lf.owner.h)
    assert r.status_code in (200, 204), r.text
    assert "API_KEY_REVOKED" in refused(auth(key))
    with pytest.raises(UnauthorizedError):
        lf.sdk(key).get_prompt("support/refund-reply", label="staging", cache_ttl_seconds=0, max_retries=0)


def test_a_write_checks_the_log_head_once(lf):
    """Like the REST routes (adr/0026), a Langfuse write authorises its commands and reads at the
    request's own check of the log head instead of checking it again for each (it made five)."""
    app = lf.api.container.app
    original, calls = app.log_head.check, []
    app.log_head.check = lambda: calls.append(1) or original()
    try:
        created = lf.http("POST", "/api/public/v2/prompts", lf.writer,
                          json={"name": "heads/once", "prompt": "t {{x}}", "labels": ["staging"]})
        assert created.status_code == 201 and created.json()["labels"] == ["staging", "latest"], created.text
        assert len(calls) == 1
        revised = lf.http("POST", "/api/public/v2/prompts", lf.writer,
                          json={"name": "heads/once", "prompt": "t2 {{x}}", "labels": ["staging"]})
        assert revised.status_code == 201 and revised.json()["version"] == 2, revised.text
        moved = lf.http("PATCH", "/api/public/v2/prompts/heads%2Fonce/versions/1", lf.writer,
                        json={"newLabels": ["staging"]})
        assert moved.status_code == 200 and moved.json()["labels"] == ["staging"], moved.text
        assert len(calls) == 3
    finally:
        app.log_head.check = original


def test_a_key_without_prompts_write_cannot_create_or_move(lf):
    sdk = lf.sdk(lf.reader)
    head = lf.api.container.app.head_position()
    with pytest.raises(AccessDeniedError) as denied:
        sdk.create_prompt(name="perm/new", prompt="t {{x}}", labels=["staging"])
    assert denied.value.body["error"] == "ForbiddenError" and "prompts:write" in denied.value.body["message"]
    lf.sdk(lf.writer).create_prompt(name="perm/existing", prompt="t {{x}}")
    head = lf.api.container.app.head_position()
    with pytest.raises(AccessDeniedError):
        sdk.create_prompt(name="perm/existing", prompt="t2 {{x}}")
    with pytest.raises(AccessDeniedError):
        sdk.update_prompt(name="perm/existing", version=1, new_labels=["staging"])
    assert lf.api.container.app.head_position() == head  # nothing written
    body = {"name": "perm/existing", "prompt": "t3 {{x}}", "labels": ["staging", "Not A Label"]}
    bad = lf.http("POST", "/api/public/v2/prompts", lf.writer, json=body)  # refused before anything is written
    assert bad.status_code == 400 and bad.json()["message"].endswith("(INVALID_LABEL)"), bad.text
    ok = lf.http("POST", "/api/public/v2/prompts", lf.writer, json={**body, "labels": ["latest", "staging"]})
    assert ok.status_code == 201 and (ok.json()["version"], ok.json()["labels"]) == (2, ["staging", "latest"])
    assert lf.http("PATCH", "/api/public/v2/prompts/perm%2Fexisting/versions/1", lf.writer,
                   json={"newLabels": ["latest"]}).json()["message"].endswith("(LABEL_RESERVED)")
    assert lf.sdk(lf.writer).get_prompt("perm/existing", label="staging", cache_ttl_seconds=0).version == 2
    assert lf.http("GET", "/api/public/v2/prompts/perm%2Fnew?version=1", lf.reader).status_code == 404


def test_protected_production_becomes_a_review_request(lf):
    created = lf.http("POST", "/api/public/v2/prompts", lf.writer, json={
        "name": "gov/greeting", "prompt": "Hello {{name}}", "labels": ["production", "staging"],
        "commitMessage": "ship it"})
    assert created.status_code == 201 and created.json()["labels"] == ["staging", "latest"]
    review_id = created.headers["x-promptforge-review-request"]
    sdk = lf.sdk(lf.writer)
    with pytest.raises(NotFoundError):  # production waits for the review
        sdk.get_prompt("gov/greeting", cache_ttl_seconds=0, max_retries=0)
    lf.settle()
    review = lf.api.q(f"/v1/orgs/{lf.org}/review-requests/{review_id}", lf.owner).json()
    assert (review["status"], review["label"], review["reason"]) == ("open", "production", "ship it")
    assert review["moves"][0]["version"] == 1 and review["requested_by"] == f"api_key:{lf.writer.id}"
    assert review["requester"] == f"user:{lf.owner.user_id}"  # four eyes by person: the key's issuer
    r = lf.api.post(f"/v1/orgs/{lf.org}/review-requests/{review_id}/approve", json={"comment": "ok"},
                    headers=lf.reviewer.h)
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    production = sdk.get_prompt("gov/greeting", cache_ttl_seconds=0)
    assert production.version == 1 and production.labels == ["production", "staging", "latest"]
    # a new version with labels=["production"]: production stays on version 1 until approved
    v2 = sdk.create_prompt(name="gov/greeting", prompt="Hi {{name}}", labels=["production"])
    assert v2.version == 2 and v2.labels == ["latest"]
    assert sdk.get_prompt("gov/greeting", cache_ttl_seconds=0).version == 1
    moved = lf.http("PATCH", "/api/public/v2/prompts/gov%2Fgreeting/versions/2", lf.writer,
                    json={"newLabels": ["production"]})
    assert moved.status_code == 200 and "production" not in moved.json()["labels"]
    assert moved.headers["x-promptforge-review-request"]
    lf.settle()
    open_ = lf.api.q(f"/v1/orgs/{lf.org}/review-requests", lf.owner, params={"status": "open"}).json()["items"]
    assert len([r for r in open_ if r["moves"][0]["name"] == "gov/greeting"]) == 2


def test_without_prompts_promote_production_is_refused_after_the_version_is_saved(lf):
    sdk = lf.sdk(lf.dev_key)
    with pytest.raises(AccessDeniedError) as denied:
        sdk.create_prompt(name="gov/dev-draft", prompt="Draft {{x}}", labels=["staging", "production"])
    message = denied.value.body["message"]
    assert "prompts:promote" in message and "version 1" in message and "['staging']" in message
    saved = sdk.get_prompt("gov/dev-draft", label="staging", cache_ttl_seconds=0)
    assert saved.version == 1 and saved.labels == ["staging", "latest"]


# -- tenancy, audit, change feed ------------------------------------------------------------------

def test_another_orgs_prompts_of_the_same_name_are_never_visible(lf):
    theirs = lf.sdk(lf.foreign_key)
    theirs.create_prompt(name="tenancy/shared", prompt="FOREIGN SECRET {{x}}", labels=["staging"])
    theirs.create_prompt(name="tenancy/theirs-only", prompt="FOREIGN ONLY {{x}}", labels=["staging"])
    ours = lf.sdk(lf.writer)
    mine = ours.create_prompt(name="tenancy/shared", prompt="ours {{x}}", labels=["staging"])
    assert mine.version == 1  # our prompt of that name, not a version of theirs
    assert ours.get_prompt("tenancy/shared", label="staging", cache_ttl_seconds=0).prompt == "ours {{x}}"
    assert theirs.get_prompt("tenancy/shared", label="staging", cache_ttl_seconds=0).prompt == "FOREIGN SECRET {{x}}"
    with pytest.raises(NotFoundError):
        ours.get_prompt("tenancy/theirs-only", label="staging", cache_ttl_seconds=0, max_retries=0)
    with pytest.raises(NotFoundError):
        ours.update_prompt(name="tenancy/theirs-only", version=1, new_labels=["beta"])
    listed = lf.http("GET", "/api/public/v2/prompts", lf.writer, params={"limit": 100})
    assert "FOREIGN" not in listed.text and "theirs-only" not in listed.text
    assert lf.http("GET", "/api/public/projects", lf.writer).json()["data"][0]["id"] == lf.org
    foreign_view = lf.http("GET", "/api/public/v2/prompts", lf.foreign_key, params={"name": "tenancy/shared"}).json()
    assert foreign_view["data"][0]["versions"] == [1] and foreign_view["data"][0]["labels"] == ["staging", "latest"]


def test_writes_are_audited_and_in_the_change_feed(lf):
    start = lf.settle()
    sdk = lf.sdk(lf.writer)
    sdk.create_prompt(name="audited/p", prompt="one {{x}}", labels=["staging"])
    sdk.create_prompt(name="audited/p", prompt="two {{x}}")
    sdk.update_prompt(name="audited/p", version=1, new_labels=["canary"])
    lf.settle()
    actor = f"api_key:{lf.writer.id}"
    audit = lf.api.q(f"/v1/orgs/{lf.org}/audit-events", lf.owner, params={"actor": actor, "limit": 200}).json()["items"]
    mine = [e for e in audit if e["position"] > start]
    # the plan's prompt counter is storage mechanics, not audited (adr/0025)
    assert sorted(e["action"] for e in mine) == ["prompt.created", "prompt.label_moved", "prompt.label_moved",
                                                 "prompt.revised"]
    assert all(e["request_id"] for e in mine)
    feed = lf.api.q(f"/v1/orgs/{lf.org}/changes", lf.owner, params={"after": start}).json()["items"]
    assert [(c["type"], c["version"], c["label"]) for c in feed] == [
        ("prompt.created", 1, None), ("prompt.label_moved", 1, "staging"), ("prompt.revised", 2, None),
        ("prompt.label_moved", 1, "canary")]
    assert {c["actor"] for c in feed} == {actor} and {c["name"] for c in feed} == {"audited/p"}


# -- listing ----------------------------------------------------------------------------------------

def test_list_filters_and_pages(lf):
    sdk = lf.sdk(lf.writer)
    for i in range(3):
        sdk.create_prompt(name=f"listing/p{i}", prompt=f"p{i} {{{{x}}}}", tags=["listing"], labels=["staging"])
    sdk.create_prompt(name="listing/p0", prompt="p0 v2 {{x}}", config={"v": 2})
    page1 = sdk.api.prompts.list(tag="listing", limit=2, page=1)
    page2 = sdk.api.prompts.list(tag="listing", limit=2, page=2)
    assert [p.name for p in page1.data] == ["listing/p0", "listing/p1"]
    assert [p.name for p in page2.data] == ["listing/p2"]
    assert (page1.meta.total_items, page1.meta.total_pages, page2.meta.page) == (3, 2, 2)
    p0 = page1.data[0]
    assert (p0.versions, p0.labels, p0.tags, p0.last_config, p0.type) == ([1, 2], ["staging", "latest"], ["listing"],
                                                                         {"v": 2}, "text")
    staged = sdk.api.prompts.list(tag="listing", label="staging").data
    assert [(p.name, p.versions, p.labels, p.last_config) for p in staged][0] == ("listing/p0", [1], ["staging"], {})
    assert [p.name for p in sdk.api.prompts.list(name="listing/p1").data] == ["listing/p1"]
    future = datetime(2999, 1, 1, tzinfo=timezone.utc)
    assert sdk.api.prompts.list(tag="listing", from_updated_at=future).meta.total_items == 0
    window = lf.http("GET", "/api/public/v2/prompts", lf.reader,
                     params={"tag": "listing", "fromUpdatedAt": "2000-01-01T00:00:00Z", "version": 2}).json()
    assert [(d["name"], d["versions"]) for d in window["data"]] == [("listing/p0", [2])]
    past = datetime(2000, 1, 1, tzinfo=timezone.utc)
    assert sdk.api.prompts.list(tag="listing", to_updated_at=past).meta.total_items == 0
    assert sdk.api.prompts.list(tag="listing", to_updated_at=future).meta.total_items == 3
    assert sdk.api.prompts.list(tag="listing", from_updated_at=past, to_updated_at=future).meta.total_items == 3
    assert lf.http("GET", "/api/public/v2/prompts", lf.reader, params={"limit": 101}).status_code == 400


# -- rate limits and what is not supported ----------------------------------------------------------

def test_rate_limits_apply_in_langfuses_shape(api_factory):
    api = api_factory(rate_limit_per_minute=5)
    with_compat(api.app)
    owner = api.user("limited")
    org = api.org(owner)
    key = api.key(owner, org, ["prompts:read"])
    answers = [api.client.get("/api/public/v2/prompts", headers=auth(key)) for _ in range(7)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and answers[0].status_code == 200
    assert limited[0].json()["error"] == "RateLimitError" and int(limited[0].headers["retry-after"]) >= 1
    bad = [api.client.get("/api/public/v2/prompts", headers=basic("pfk_00000000", "pfk_x")) for _ in range(7)]
    assert bad[0].status_code == 401 and bad[-1].status_code == 429  # refused credentials: per address


def test_other_langfuse_endpoints_answer_not_supported(lf, caplog):
    for method, path in (("POST", "/api/public/otel/v1/traces"), ("POST", "/api/public/ingestion"),
                         ("GET", "/api/public/traces"), ("GET", "/api/public/v2/datasets")):
        r = lf.http(method, path, lf.writer, content=b"{}")
        assert r.status_code == 404 and r.json()["error"] == "LangfuseNotFoundError"
        assert "not supported" in r.json()["message"]
    r = lf.http("DELETE", "/api/public/v2/prompts/support%2Frefund-reply", lf.writer)
    assert r.status_code == 405 and r.json()["error"] == "MethodNotAllowedError" and r.headers["allow"] == "GET"
    assert lf.http("PUT", "/api/public/v2/prompts", lf.writer).headers["allow"] == "GET, POST"
    # with tracing on, the SDK's exports are refused and logged by the SDK; prompts keep working
    lf.sdk(lf.writer).create_prompt(name="tracing/p", prompt="traced {{x}}", labels=["staging"])
    key = lf.api.key(lf.owner, lf.org, ["prompts:read"], name="tracing")
    traced = Langfuse(public_key=prefix(key), secret_key=key.raw, host=lf.base, tracing_enabled=True, flush_at=1)
    lf.clients.append(traced)
    with caplog.at_level(logging.WARNING):
        with traced.start_as_current_observation(name="call"):
            got = traced.get_prompt("tracing/p", label="staging", cache_ttl_seconds=0)
        traced.flush()
    assert got.compile(x="ok") == "traced ok"
    assert any("404" in record.getMessage() for record in caplog.records), [r.getMessage() for r in caplog.records]
