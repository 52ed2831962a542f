"""Webhooks end to end (issue 12): a real HTTP receiver on 127.0.0.1 gets the change feed, signed, in
order, at least once; retries, disabling, the delivery log, redelivery, SSRF guard, tenancy.

The receiver is a `http.server` on a free port that records each request's raw body and headers
and can answer 200, 500, 302, hang, or be down (its port closed). The deployments under test allow
private destinations (`webhooks_allow_private_networks`) so they may deliver to it, except in the
SSRF tests, which check that without the setting nothing reaches it."""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.support import assert_error
from tests.support.waiting import until
from workers.webhooks import sender

#: Fast retries and short timeouts: these tests are about behaviour, not production pacing.
FAST = dict(webhooks_allow_private_networks=True, webhook_retry_base_seconds=0.05, webhook_retry_max_seconds=0.2,
            webhook_timeout_seconds=2.0, projection_poll_seconds=0.1, webhook_concurrency=4,
            rate_limit_per_minute=100_000)


# -- the receiver ------------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event_id(self) -> int:
        return int(self.headers["promptforge-event-id"])

    @property
    def delivery(self) -> str:
        return self.headers["promptforge-delivery"]

    @property
    def type(self) -> str:
        return self.headers["promptforge-event"]


class Receiver:
    """A real HTTP endpoint. `mode`: "ok" (200), "fail" (500), "redirect" (302 to /elsewhere),
    "hang" (answers after `hang_seconds`); `down()` closes the port, `up()` opens it again."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.mode = "ok"
        self.hang_seconds = 5.0
        self.changed = threading.Condition()
        self._release = threading.Event()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.up()

    # -- lifecycle -----------------------------------------------------------------------------
    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                mode = receiver.mode
                status = {"ok": 200, "fail": 500, "redirect": 302, "hang": 200}[mode]
                with receiver.changed:
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      raw, status, time.monotonic()))
                    receiver.changed.notify_all()
                if mode == "hang":
                    receiver._release.wait(receiver.hang_seconds)
                self.send_response(status)
                if mode == "redirect":
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST  # a followed redirect would show up here  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self._release.set()
        self.down()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    # -- what arrived -------------------------------------------------------------------------------
    def accepted(self) -> list[Received]:
        """The requests it answered with a 2xx (what a receiver acts on)."""
        return [r for r in list(self.requests) if 200 <= r.status < 300]

    def wait_for(self, count: int, timeout: float = 15.0, *, accepted: bool = True) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                got = self.accepted() if accepted else list(self.requests)
                if len(got) >= count or time.monotonic() >= deadline:
                    return got
                self.changed.wait(max(0.0, min(0.2, deadline - time.monotonic())))


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make() -> Receiver:
        made.append(Receiver())
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def fast_api(api_factory):
    def make(**overrides):
        return api_factory(**{**FAST, **overrides})

    return make


# -- helpers --------------------------------------------------------------------------------------
def create(api, who, org: str, url: str, events: list[str] | None = None, **extra) -> dict[str, Any]:
    r = api.post(f"/v1/orgs/{org}/webhooks", json={"url": url, "events": events or ["*"], **extra}, headers=who.h)
    assert r.status_code == 201, r.text
    return r.json()


def hook_of(api, who, org: str, hook_id: str) -> dict[str, Any]:
    r = api.q(f"/v1/orgs/{org}/webhooks/{hook_id}", who)
    assert r.status_code == 200, r.text
    return r.json()


def log_of(api, who, org: str, hook_id: str, **params) -> list[dict[str, Any]]:
    r = api.get(f"/v1/orgs/{org}/webhooks/{hook_id}/deliveries", headers=who.h, params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def feed_after(api, who, org: str, after: int, count: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while len(items) < count and time.monotonic() < deadline:
        r = api.get(f"/v1/orgs/{org}/changes", headers=who.h, params={"after": after, "wait": 1})
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        after = r.json()["next"]
    return items


def _setup(fast_api, **overrides):
    api = fast_api(**overrides)
    owner = api.user("owner")
    return api, owner, api.org(owner)


# -- the secret ----------------------------------------------------------------------------------
def test_created_with_the_secret_shown_once(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    receiver = receivers()
    headers = {**owner.h, "Idempotency-Key": "hook-1"}
    body = {"url": receiver.url, "events": ["prompt.revised", "prompt.created"], "description": "ci"}
    r = api.post(f"/v1/orgs/{org}/webhooks", json=body, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert r.headers["cache-control"] == "no-store"
    assert created["events"] == ["prompt.created", "prompt.revised"] and created["enabled"] is True
    assert created["secret_generation"] == 1 and created["position"] == int(r.headers["x-event-position"])

    replay = api.post(f"/v1/orgs/{org}/webhooks", json=body, headers=headers)
    assert replay.status_code == 201, replay.text
    assert replay.json()["id"] == created["id"] and replay.json()["secret"] is None
    assert replay.headers["idempotency-replayed"] == "true" and replay.headers["cache-control"] == "no-store"
    assert_error(api.post(f"/v1/orgs/{org}/webhooks", json={**body, "description": "other"}, headers=headers),
                 409, "IDEMPOTENCY_KEY_REUSED")

    one = api.q(f"/v1/orgs/{org}/webhooks/{created['id']}", owner)
    listed = api.q(f"/v1/orgs/{org}/webhooks", owner)
    assert one.status_code == 200 and listed.status_code == 200
    assert [h["id"] for h in listed.json()["items"]] == [created["id"]]
    audit = api.q(f"/v1/orgs/{org}/audit-events", owner)
    changes = api.q(f"/v1/orgs/{org}/changes", owner, params={"after": 0})
    for response in (one, listed, audit, changes):
        assert response.status_code == 200 and secret not in response.text and "whsec_" not in response.text
    assert "secret" not in one.json() and "secret" not in listed.json()["items"][0]
    assert one.json()["description"] == "ci" and one.json()["url"] == receiver.url


def test_deliveries_are_signed_and_rotation_changes_the_secret(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    receiver = receivers()
    hook = create(api, owner, org, receiver.url, ["prompt.created"])
    api.prompt(owner, org, "first", "t")
    (first,) = receiver.wait_for(1)
    document = first.json
    assert first.path == "/hook" and first.headers["content-type"] == "application/json"
    assert first.type == document["type"] == "prompt.created"
    assert first.event_id == document["position"] and first.delivery == document["delivery_id"]
    assert document["webhook_id"] == hook["id"] and document["org_id"] == org and document["name"] == "first"
    assert document["actor"] == f"user:{owner.user_id}"
    (change,) = feed_after(api, owner, org, hook["position"], 1)
    assert {k: document[k] for k in change} == change  # the change as the feed shows it
    signature = first.headers["promptforge-signature"]
    assert signature.startswith("t=") and ",v1=" in signature
    assert sender.verify(hook["secret"], first.body, signature)
    assert not sender.verify(hook["secret"], first.body + b" ", signature)
    assert not sender.verify("whsec_wrong", first.body, signature)
    t = int(signature.split(",")[0][2:])
    assert abs(t - time.time()) < 60

    r = api.post(f"/v1/orgs/{org}/webhooks/{hook['id']}/rotate-secret", headers=owner.h)
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert r.headers["cache-control"] == "no-store"
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    assert rotated["secret_generation"] == 2 and hook_of(api, owner, org, hook["id"])["secret_generation"] == 2
    api.prompt(owner, org, "second", "t")
    second = receiver.wait_for(2)[1]
    assert second.json["name"] == "second"
    assert sender.verify(rotated["secret"], second.body, second.headers["promptforge-signature"])
    assert not sender.verify(hook["secret"], second.body, second.headers["promptforge-signature"])


# -- order, vocabulary, filters ------------------------------------------------------------------
def test_order_is_kept_per_webhook_and_types_are_the_feed_vocabulary(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    receiver = receivers()
    hook = create(api, owner, org, receiver.url)
    pid = api.prompt(owner, org, "ordered", "v1 {{x}}")
    for n in range(2, 8):
        api.revise(owner, org, pid, n - 1, f"v{n} {{{{x}}}}")
    for version in (3, 5, 7):
        assert api.label(owner, org, pid, "production", version).status_code == 200
    expected = feed_after(api, owner, org, hook["position"], 10)
    assert len(expected) == 10
    got = receiver.wait_for(10)
    assert [(r.event_id, r.type) for r in got] == [(c["position"], c["type"]) for c in expected]
    assert [r.type for r in got] == ["prompt.created"] + ["prompt.revised"] * 6 + ["prompt.label_moved"] * 3
    assert [r.event_id for r in got] == sorted(r.event_id for r in got) and len({r.event_id for r in got}) == 10
    assert len({r.delivery for r in got}) == 10
    assert [r.json["version"] for r in got[-3:]] == [3, 5, 7]
    assert all(sender.verify(hook["secret"], r.body, r.headers["promptforge-signature"]) for r in got)
    # the receiver has the last delivery before the dispatcher records its answer: wait for the record
    log = until(lambda: (lambda l: l if all(d["state"] == "delivered" for d in l) else None)(
        log_of(api, owner, org, hook["id"])), message="every delivery recorded as delivered")
    assert [d["event_id"] for d in log] == [r.event_id for r in reversed(got)]  # newest first
    assert all(d["state"] == "delivered" and d["attempts"] == 1 and d["history"][0]["ok"] for d in log), \
        [(d["event_id"], d["state"], d["attempts"]) for d in log]


def test_events_filter_and_star_includes_audit_changes(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    moves, everything = receivers(), receivers()
    first = create(api, owner, org, moves.url, ["prompt.label_moved"])
    star = create(api, owner, org, everything.url, ["*", "prompt.created"])
    assert star["events"] == ["*"]
    pid = api.prompt(owner, org, "filtered", "t")
    api.revise(owner, org, pid, 1, "u")
    assert api.label(owner, org, pid, "staging", 2).status_code == 200
    api.key(owner, org, ["prompts:read"], name="bot")
    expected = feed_after(api, owner, org, star["position"], 4)
    got = everything.wait_for(4)
    assert [r.type for r in got] == ["prompt.created", "prompt.revised", "prompt.label_moved", "api_key.issued"]
    assert [r.event_id for r in got] == [c["position"] for c in expected]
    assert got[-1].json["audience"] == "audit"
    (moved,) = moves.wait_for(1)
    assert moved.type == "prompt.label_moved" and moved.json["label"] == "staging"
    # Nothing else is on its way to the filtered one: its log holds just that delivery.
    assert [d["type"] for d in log_of(api, owner, org, first["id"])] == ["prompt.label_moved"]
    assert len(moves.requests) == 1

    # Changing the filter applies to the changes after it.
    r = api.patch(f"/v1/orgs/{org}/webhooks/{first['id']}", json={"events": ["prompt.archived"]}, headers=owner.h)
    assert r.status_code == 200 and r.json()["events"] == ["prompt.archived"]
    until(lambda: hook_of(api, owner, org, first["id"])["events"] == ["prompt.archived"])
    assert api.post(f"/v1/orgs/{org}/prompts/{pid}/archive", headers=owner.h).status_code == 200
    assert moves.wait_for(2)[1].type == "prompt.archived"


# -- failures and retries -------------------------------------------------------------------------
def test_a_receiver_failing_then_down_then_up_gets_everything_in_order(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    receiver = receivers()
    receiver.mode = "fail"
    hook = create(api, owner, org, receiver.url, ["prompt.created", "prompt.revised"])
    pid = api.prompt(owner, org, "retried", "v1")
    api.revise(owner, org, pid, 1, "v2")
    api.revise(owner, org, pid, 2, "v3")
    receiver.wait_for(2, accepted=False)  # the head, answered 500 twice
    receiver.down()

    def head_failed_both_ways():
        head = log_of(api, owner, org, hook["id"])[-1]
        codes = [a["status_code"] for a in head["history"]]
        return head if 500 in codes and codes[-1] is None and len(codes) >= 3 else None

    head = until(head_failed_both_ways, message="500s then connection errors in the log")
    assert head["state"] == "pending" and head["type"] == "prompt.created" and head["delivered_at"] is None
    assert all(not a["ok"] and a["error"] and a["next_retry_at"] and not a["manual"] for a in head["history"])
    assert [a["attempt"] for a in head["history"]] == list(range(1, len(head["history"]) + 1))
    assert "HTTP 500" in [a["error"] for a in head["history"]]
    assert head["history"][-1]["error"].startswith("ConnectError")
    # The others wait behind the head: nothing of them went out.
    assert {r.type for r in receiver.requests} == {"prompt.created"}
    queued = log_of(api, owner, org, hook["id"])[:-1]
    assert [d["state"] for d in queued] == ["pending", "pending"] and all(d["attempts"] == 0 for d in queued)

    receiver.mode = "ok"
    receiver.up()
    got = receiver.wait_for(3)
    assert [r.type for r in got] == ["prompt.created", "prompt.revised", "prompt.revised"]
    assert [r.json["version"] for r in got] == [1, 2, 3]
    log = list(reversed(until(lambda: (lambda l: l if all(d["state"] == "delivered" for d in l) else None)(
        log_of(api, owner, org, hook["id"])), message="all delivered")))
    assert [d["event_id"] for d in log] == [r.event_id for r in got]
    history = log[0]["history"]
    assert [a["ok"] for a in history] == [False] * (len(history) - 1) + [True]
    assert history[-1]["status_code"] == 200 and history[-1]["error"] is None and history[-1]["next_retry_at"] is None
    assert log[0]["delivered_at"] is not None and log[0]["attempts"] == len(history)
    retries = [a["attempted_at"] for a in history]
    assert retries == sorted(retries)


def test_delivery_ids_are_unique_and_a_redelivery_repeats_id_and_body(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    receiver = receivers()
    hook = create(api, owner, org, receiver.url, ["prompt.created"])
    for name in ("a", "b", "c"):
        api.prompt(owner, org, name, "t")
    got = receiver.wait_for(3)
    assert len({r.delivery for r in got}) == 3 and len({r.body for r in got}) == 3
    log = log_of(api, owner, org, hook["id"])
    assert sorted(d["delivery_id"] for d in log) == sorted(r.delivery for r in got)

    # Paging the log: newest first, `next_before` for the older ones.
    page = api.get(f"/v1/orgs/{org}/webhooks/{hook['id']}/deliveries", headers=owner.h, params={"limit": 2}).json()
    assert [d["event_id"] for d in page["items"]] == [got[2].event_id, got[1].event_id]
    rest = api.get(f"/v1/orgs/{org}/webhooks/{hook['id']}/deliveries", headers=owner.h,
                   params={"limit": 2, "before": page["next_before"]}).json()
    assert [d["event_id"] for d in rest["items"]] == [got[0].event_id] and rest["next_before"] is None

    target = got[1]
    r = api.post(f"/v1/orgs/{org}/webhooks/{hook['id']}/deliveries/{target.delivery}/redeliver", headers=owner.h)
    assert r.status_code == 200, r.text
    assert r.json() == {"delivery_id": target.delivery, "attempt": 2, "ok": True, "status_code": 200,
                        "latency_ms": r.json()["latency_ms"], "error": None}
    again = receiver.wait_for(4)[3]
    assert again.delivery == target.delivery and again.body == target.body and again.event_id == target.event_id
    assert again.type == target.type
    assert sender.verify(hook["secret"], again.body, again.headers["promptforge-signature"])
    one = api.get(f"/v1/orgs/{org}/webhooks/{hook['id']}/deliveries/{target.delivery}", headers=owner.h)
    assert one.status_code == 200, one.text
    assert [(a["attempt"], a["manual"], a["ok"]) for a in one.json()["history"]] == [(1, False, True), (2, True, True)]
    assert one.json()["state"] == "delivered" and one.json()["attempts"] == 2


def test_disabled_after_consecutive_failures_and_resumed_in_order(fast_api, receivers):
    api, owner, org = _setup(fast_api, webhook_max_consecutive_failures=3)
    receiver = receivers()
    receiver.mode = "fail"
    types = ["prompt.created", "prompt.revised", "prompt.label_moved"]
    hook = create(api, owner, org, receiver.url, types)
    pid = api.prompt(owner, org, "flaky", "v1")
    api.revise(owner, org, pid, 1, "v2")
    disabled = until(lambda: (lambda h: h if not h["enabled"] else None)(hook_of(api, owner, org, hook["id"])),
                     message="the webhook disabled")
    assert "3 consecutive failed deliveries" in disabled["disabled_reason"]
    assert "HTTP 500" in disabled["disabled_reason"]
    assert len(receiver.requests) == 3 and {r.type for r in receiver.requests} == {"prompt.created"}
    audit = until(lambda: api.q(f"/v1/orgs/{org}/audit-events", owner,
                                params={"action": "webhook.disabled"}).json()["items"])
    assert [(a["actor"], a["target_id"]) for a in audit] == [("system:webhooks", hook["id"])]
    assert "consecutive" in audit[0]["details"]["reason"]
    head = log_of(api, owner, org, hook["id"])[-1]
    assert head["state"] == "pending" and len(head["history"]) == 3 and head["history"][-1]["next_retry_at"] is None

    # Changes while disabled are kept for it too; nothing is sent until a member re-enables it.
    assert api.label(owner, org, pid, "production", 2).status_code == 200
    receiver.mode = "ok"
    dispatcher = api.container.dispatcher
    rounds, deliver = [], dispatcher.deliver
    dispatcher.deliver = lambda webhook_id: rounds.append(webhook_id) or deliver(webhook_id)  # counts, then delivers
    try:
        time.sleep(0.5)  # a few dispatcher rounds (every 0.1 s): a disabled webhook gets nothing, costs nothing
    finally:
        del dispatcher.deliver
    assert len(receiver.requests) == 3
    assert len(rounds) <= 2, f"a disabled webhook was started {len(rounds)} times in 0.5 s"
    r = api.patch(f"/v1/orgs/{org}/webhooks/{hook['id']}", json={"enabled": True}, headers=owner.h)
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is True and r.json()["disabled_reason"] == ""
    got = receiver.wait_for(3)
    assert [r.type for r in got] == types and [r.event_id for r in got] == sorted(r.event_id for r in got)
    enabled = api.q(f"/v1/orgs/{org}/audit-events", owner, params={"action": "webhook.enabled"}).json()["items"]
    assert [a["actor"] for a in enabled] == [f"user:{owner.user_id}"]


def test_disabled_when_failing_longer_than_the_budget(fast_api, receivers):
    api, owner, org = _setup(fast_api, webhook_failure_budget_seconds=0.6, webhook_max_consecutive_failures=1000)
    receiver = receivers()
    receiver.down()
    hook = create(api, owner, org, receiver.url, ["prompt.created"])
    started = time.monotonic()
    api.prompt(owner, org, "down", "t")
    disabled = until(lambda: (lambda h: h if not h["enabled"] else None)(hook_of(api, owner, org, hook["id"])),
                     message="the webhook disabled by the budget")
    assert time.monotonic() - started >= 0.6
    assert "ConnectError" in disabled["disabled_reason"]
    head = log_of(api, owner, org, hook["id"])[0]
    assert 2 <= len(head["history"]) < 1000 and head["state"] == "pending"


def test_a_hanging_receiver_slows_neither_commands_nor_other_webhooks(fast_api, receivers):
    api, owner, org = _setup(fast_api, webhook_timeout_seconds=3.0)
    hanging, healthy = receivers(), receivers()
    hanging.mode, hanging.hang_seconds = "hang", 10.0
    slow = create(api, owner, org, hanging.url, ["prompt.created"])
    create(api, owner, org, healthy.url, ["prompt.created"])
    timings, done = [], []
    for n in range(5):
        started = time.perf_counter()
        api.prompt(owner, org, f"p{n}", "t")
        timings.append(time.perf_counter() - started)
        done.append(time.monotonic())
        if n == 0:
            hanging.wait_for(1, accepted=False)  # the hanging receiver holds its first delivery from now on
        time.sleep(0.2)
    assert max(timings) < 1.0, timings  # far under the 3 s delivery timeout, let alone the 10 s hang
    got = healthy.wait_for(5, timeout=10)
    assert [r.json["name"] for r in got] == [f"p{n}" for n in range(5)]
    waits = [r.at - t for r, t in zip(got, done)]
    assert max(waits) < 1.5, f"the healthy webhook waited behind the hanging one: {waits}"
    assert len(hanging.requests) == 1  # its head is still being waited on; the rest queue behind it
    head = until(lambda: (lambda l: l[-1] if l and l[-1]["history"] else None)(log_of(api, owner, org, slow["id"])))
    assert head["history"][0]["error"] == "timed out after 3s" and head["history"][0]["status_code"] is None
    assert 2900 <= head["history"][0]["latency_ms"] < 6000


# -- SSRF -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://localhost/hook", "http://LOCALHOST.:8080/x", "http://api.localhost/x",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:9000/", "http://10.1.2.3/", "http://192.168.0.10/",
    "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
])
def test_private_literal_destinations_are_refused_without_the_setting(api_factory, url):
    api = api_factory()
    owner = api.user("owner")
    org = api.org(owner)
    assert_error(api.post(f"/v1/orgs/{org}/webhooks", json={"url": url, "events": ["*"]}, headers=owner.h),
                 422, "INVALID_WEBHOOK_URL")
    hook = create(api, owner, org, "https://hooks.example.com/promptforge")
    assert_error(api.patch(f"/v1/orgs/{org}/webhooks/{hook['id']}", json={"url": url}, headers=owner.h),
                 422, "INVALID_WEBHOOK_URL")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "http://user:pw@example.com/",
                                 "http://exa mple.com/", "http:///nohost", "http://example.com:99999/",
                                 "http://example.com:port/", "http://[::1/", "http://" + "a" * 2000 + ".com/"])
def test_malformed_urls_are_refused(fast_api, url):
    api, owner, org = _setup(fast_api)
    body = assert_error(api.post(f"/v1/orgs/{org}/webhooks", json={"url": url, "events": ["*"]}, headers=owner.h),
                        422)
    assert body["error"]["code"] == ("VALIDATION_ERROR" if len(url) > 2000 else "INVALID_WEBHOOK_URL"), body


def test_unknown_event_types_are_refused(fast_api):
    api, owner, org = _setup(fast_api)
    body = assert_error(api.post(f"/v1/orgs/{org}/webhooks", json={"url": "https://example.com/h",
                                                                   "events": ["prompt.created", "prompt.exploded"]},
                                 headers=owner.h), 422, "INVALID_WEBHOOK_EVENTS")
    assert body["error"]["details"]["unknown"] == ["prompt.exploded"]
    assert "prompt.label_moved" in body["error"]["details"]["allowed"]
    assert_error(api.post(f"/v1/orgs/{org}/webhooks", json={"url": "https://example.com/h", "events": []},
                          headers=owner.h), 422)


def _refusals(api, owner, org, hook_id, count=1):
    def attempts():
        log = log_of(api, owner, org, hook_id)
        return log if log and len(log[-1]["history"]) >= count else None

    return until(attempts, message="refused attempts in the log")[-1]["history"]


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(api_factory, receivers, monkeypatch):
    """DNS rebinding: the name passes at creation; the address it resolves to is checked at each delivery."""
    api = api_factory(**{**FAST, "webhooks_allow_private_networks": False})
    owner = api.user("owner")
    org = api.org(owner)
    receiver = receivers()
    real = socket.getaddrinfo
    names = {"rebound.hooks.test": "127.0.0.1", "metadata.hooks.test": "169.254.169.254"}

    def resolving(host, port, *args, **kwargs):
        if host in names:
            return real(names[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(sender.socket, "getaddrinfo", resolving)
    rebound = create(api, owner, org, f"http://rebound.hooks.test:{receiver.port}/hook", ["prompt.created"])
    metadata = create(api, owner, org, f"http://metadata.hooks.test:{receiver.port}/latest", ["prompt.created"])
    # Numeric forms that are not literal addresses to a parser, but are to the resolver.
    decimal = create(api, owner, org, f"http://2130706433:{receiver.port}/hook", ["prompt.created"])
    api.prompt(owner, org, "p", "t")
    for hook, address in ((rebound, "127.0.0.1"), (metadata, "169.254.169.254"), (decimal, "127.0.0.1")):
        history = _refusals(api, owner, org, hook["id"], 2)
        assert all(not a["ok"] and a["status_code"] is None for a in history)
        assert f"non-public address ({address})" in history[0]["error"]
        assert history[0]["next_retry_at"] is not None
    assert receiver.requests == []


def test_redirects_are_not_followed(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    receiver = receivers()
    receiver.mode = "redirect"
    hook = create(api, owner, org, receiver.url, ["prompt.created"])
    api.prompt(owner, org, "p", "t")
    history = _refusals(api, owner, org, hook["id"], 2)
    assert all(a["status_code"] == 302 and not a["ok"] and a["error"] == "redirects are not followed"
               for a in history)
    assert {r.path for r in receiver.requests} == {"/hook"}


# -- tenancy, permissions, deletion, audit -------------------------------------------------------
def test_other_orgs_webhooks_and_deliveries_are_not_found_and_developers_are_forbidden(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    receiver = receivers()
    hook = create(api, owner, org, receiver.url, ["prompt.created"])
    api.prompt(owner, org, "p", "t")
    (delivered,) = receiver.wait_for(1)
    stranger = api.user("stranger")
    theirs = api.org(stranger, "Other")
    their_hook = create(api, stranger, theirs, receiver.url, ["prompt.created"])
    base = f"/v1/orgs/{theirs}/webhooks/{hook['id']}"
    for method, path in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-secret"),
                         ("GET", "/deliveries"), ("GET", f"/deliveries/{delivered.delivery}"),
                         ("POST", f"/deliveries/{delivered.delivery}/redeliver")]:
        kw = {"json": {"description": "mine"}} if method == "PATCH" else {}
        assert_error(api.request(method, base + path, headers=stranger.h, **kw), 404, "WEBHOOK_NOT_FOUND")
    assert_error(api.get(f"/v1/orgs/{org}/webhooks", headers=stranger.h), 404)
    # Their own webhook, our delivery id: not theirs.
    mine = f"/v1/orgs/{theirs}/webhooks/{their_hook['id']}/deliveries/{delivered.delivery}"
    assert_error(api.get(mine, headers=stranger.h), 404, "DELIVERY_NOT_FOUND")
    assert_error(api.post(mine + "/redeliver", headers=stranger.h), 404, "DELIVERY_NOT_FOUND")
    assert_error(api.get(f"/v1/orgs/{org}/webhooks/{hook['id']}/deliveries/not-a-uuid", headers=owner.h),
                 404, "DELIVERY_NOT_FOUND")
    assert_error(api.get(f"/v1/orgs/{org}/webhooks/not-a-uuid", headers=owner.h), 404, "WEBHOOK_NOT_FOUND")
    assert len(receiver.requests) == 1 and hook_of(api, owner, org, hook["id"])["description"] == ""

    developer = api.user("dev")
    api.add(owner, org, developer, "developer")
    base = f"/v1/orgs/{org}/webhooks"
    for method, path in [("POST", ""), ("GET", ""), ("GET", f"/{hook['id']}"), ("PATCH", f"/{hook['id']}"),
                         ("DELETE", f"/{hook['id']}"), ("POST", f"/{hook['id']}/rotate-secret"),
                         ("GET", f"/{hook['id']}/deliveries"),
                         ("GET", f"/{hook['id']}/deliveries/{delivered.delivery}"),
                         ("POST", f"/{hook['id']}/deliveries/{delivered.delivery}/redeliver")]:
        kw = {"json": {"url": receiver.url, "events": ["*"]}} if method in ("POST", "PATCH") and not path.endswith(
            ("secret", "redeliver")) else {}
        assert_error(api.request(method, base + path, headers=developer.h, **kw), 403, "PERMISSION_DENIED")
    assert len(receiver.requests) == 1


def test_deleting_cancels_pending_deliveries(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    receiver = receivers()
    receiver.down()
    hook = create(api, owner, org, receiver.url, ["prompt.created"])
    for name in ("a", "b"):
        api.prompt(owner, org, name, "t")
    _refusals(api, owner, org, hook["id"], 1)
    r = api.delete(f"/v1/orgs/{org}/webhooks/{hook['id']}", headers=owner.h)
    assert r.status_code == 200, r.text
    assert_error(api.q(f"/v1/orgs/{org}/webhooks/{hook['id']}", owner), 404, "WEBHOOK_NOT_FOUND")
    assert api.q(f"/v1/orgs/{org}/webhooks", owner).json()["items"] == []
    assert_error(api.get(f"/v1/orgs/{org}/webhooks/{hook['id']}/deliveries", headers=owner.h), 404,
                 "WEBHOOK_NOT_FOUND")
    assert_error(api.delete(f"/v1/orgs/{org}/webhooks/{hook['id']}", headers=owner.h), 404, "WEBHOOK_NOT_FOUND")
    store = api.container.deliveries
    cancelled = until(lambda: (lambda l: l if l and all(d["state"] == "cancelled" for d in l) else None)(
        store.log(org, hook["id"])), message="pending deliveries cancelled")
    assert len(cancelled) == 2
    receiver.up()
    api.prompt(owner, org, "after", "t")
    time.sleep(0.5)  # dispatcher rounds (every 0.1 s) that must not send anything
    assert receiver.requests == []


def test_webhook_changes_are_audited_and_in_the_feed(fast_api, receivers):
    api, owner, org = _setup(fast_api)
    receiver = receivers()
    hook = create(api, owner, org, receiver.url, ["prompt.created"], description="first")
    path = f"/v1/orgs/{org}/webhooks/{hook['id']}"
    r = api.patch(path, json={"description": "second", "events": ["prompt.created", "prompt.revised"]},
                  headers=owner.h)
    assert r.status_code == 200 and r.json()["position"] is not None
    same = api.patch(path, json={"description": "second", "events": ["prompt.revised", "prompt.created"]},
                     headers=owner.h)
    assert same.status_code == 200 and same.json()["position"] is None  # nothing changed: no event
    assert api.post(path + "/rotate-secret", headers=owner.h).status_code == 200
    paused = api.patch(path, json={"enabled": False}, headers=owner.h)
    assert paused.status_code == 200 and paused.json()["enabled"] is False
    assert paused.json()["disabled_reason"] == "disabled by a member"
    for lax in ("true", "false", 1, 0):  # a JSON boolean only
        body = assert_error(api.patch(path, json={"enabled": lax}, headers=owner.h), 422, "VALIDATION_ERROR")
        assert ["body", "enabled"] in [e["loc"] for e in body["error"]["details"]["errors"]]
    assert api.patch(path, json={"enabled": True}, headers=owner.h).json()["enabled"] is True
    assert api.delete(path, headers=owner.h).status_code == 200
    items = api.q(f"/v1/orgs/{org}/audit-events", owner, params={"target": hook["id"]}).json()["items"]
    assert [i["action"] for i in reversed(items)] == ["webhook.created", "webhook.updated", "webhook.secret_rotated",
                                                      "webhook.disabled", "webhook.enabled", "webhook.deleted"]
    assert {i["actor"] for i in items} == {f"user:{owner.user_id}"}
    assert "whsec_" not in json.dumps(items)
    changes = feed_after(api, owner, org, hook["position"] - 1, 6)
    assert [c["type"] for c in changes] == ["webhook.created", "webhook.updated", "webhook.secret_rotated",
                                            "webhook.disabled", "webhook.enabled", "webhook.deleted"]
    assert {c["audience"] for c in changes} == {"audit"}
    assert receiver.url not in json.dumps(changes)  # a URL may embed a token: org:manage only, never the feed
