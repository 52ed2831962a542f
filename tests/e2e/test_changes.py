"""The change feed over HTTP: vocabulary, audiences, cursors, long-poll, SSE (resume, tenancy)."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from interfaces.http.app import create_app
from tests.e2e.support import assert_error
from tests.support.waiting import serving as serving_app


def feed(api, org, who, **params):
    r = api.get(f"/v1/orgs/{org}/changes", headers=who.h, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for_feed(api, org, who, after, count, timeout=10):
    """Long-polls from `after` until `count` changes arrived (each poll returns what is new)."""
    deadline = time.monotonic() + timeout
    items, cursor = [], after
    while len(items) < count and time.monotonic() < deadline:
        page = feed(api, org, who, after=cursor, wait=1)
        items += page["items"]
        cursor = page["next"]
    return items


@pytest.fixture
def team(api):
    owner, dev = api.user("owner"), api.user("dev")
    org = api.org(owner, protected=True)
    api.add(owner, org, dev, "developer")
    return owner, dev, org


def test_vocabulary_order_and_cursor(api, team):
    owner, dev, org = team
    start = api.container.app.head_position()
    pid = api.prompt(dev, org, "support/refund", "Refund {{x}}")
    api.revise(dev, org, pid, 1, "Refund now {{x}}")
    assert api.label(dev, org, pid, "staging", 2).status_code == 200
    assert api.post(f"/v1/orgs/{org}/prompts/{pid}/rename", json={"name": "support/refunds"}, headers=dev.h).status_code == 200
    assert api.post(f"/v1/orgs/{org}/prompts/{pid}/archive", headers=dev.h).status_code == 200
    items = wait_for_feed(api, org, owner, start, 5)
    assert [i["type"] for i in items] == ["prompt.created", "prompt.revised", "prompt.label_moved", "prompt.renamed",
                                          "prompt.archived"]
    assert [i["position"] for i in items] == sorted(i["position"] for i in items)
    assert items[0]["name"] == "support/refund" and items[0]["version"] == 1
    assert items[1]["version"] == 2 and items[2]["label"] == "staging" and items[2]["version"] == 2
    assert items[3]["name"] == "support/refunds" and items[4]["name"] == "support/refunds"
    assert all(i["prompt_id"] == pid and i["actor"] == f"user:{dev.user_id}" for i in items)
    page = feed(api, org, owner, after=start, limit=2)
    assert [i["type"] for i in page["items"]] == ["prompt.created", "prompt.revised"]
    rest = feed(api, org, owner, after=page["next"])
    assert [i["type"] for i in rest["items"]][:3] == ["prompt.label_moved", "prompt.renamed", "prompt.archived"]
    empty = feed(api, org, owner, after=rest["next"])
    assert empty == {"items": [], "next": rest["next"]}


def test_member_and_key_changes_need_audit_read(api, team):
    owner, dev, org = team
    start = api.container.app.head_position()
    api.key(owner, org, ["prompts:read"], name="bot")
    api.prompt(dev, org, "p", "t")
    owner_view = [i["type"] for i in wait_for_feed(api, org, owner, start, 2)]
    assert "api_key.issued" in owner_view and "prompt.created" in owner_view
    dev_view = [i["type"] for i in feed(api, org, dev, after=start)["items"]]
    assert dev_view == ["prompt.created"]
    assert all(i["audience"] == "prompts" for i in feed(api, org, dev, after=0)["items"])
    key = api.key(owner, org, ["audit:read"], name="no-read")
    assert_error(api.get(f"/v1/orgs/{org}/changes", headers=key.h), 403, "PERMISSION_DENIED")


def test_reviews_and_releases_are_in_the_feed(api, team):
    owner, dev, org = team
    reviewer = api.user("reviewer")
    api.add(owner, org, reviewer, "reviewer")
    pid = api.prompt(dev, org, "p", "t")
    start = api.container.app.head_position()
    r = api.post(f"/v1/orgs/{org}/review-requests", headers=reviewer.h,
                 json={"prompt_id": pid, "label": "production", "version": 1, "expected_version": 0})
    assert r.status_code == 201, r.text
    assert api.post(f"/v1/orgs/{org}/review-requests/{r.json()['id']}/approve", json={"comment": "ok"},
                    headers=owner.h).status_code == 200
    types = [i["type"] for i in wait_for_feed(api, org, owner, start, 4)]
    assert types == ["review.requested", "review.approved", "review.applied", "prompt.label_moved"]  # one save


def test_long_poll_returns_as_soon_as_a_change_arrives(api, team):
    owner, dev, org = team
    cursor = feed(api, org, owner, after=api.container.app.head_position())["next"]
    started = time.monotonic()
    empty = feed(api, org, owner, after=cursor, wait=0.5)
    assert empty["items"] == [] and empty["next"] == cursor and time.monotonic() - started >= 0.45
    threading.Timer(0.5, lambda: api.prompt(dev, org, "late", "t")).start()
    started = time.monotonic()
    page = feed(api, org, owner, after=cursor, wait=10)
    assert [i["type"] for i in page["items"]] == ["prompt.created"] and time.monotonic() - started < 5
    assert_error(api.get(f"/v1/orgs/{org}/changes", headers=owner.h, params={"wait": 31}), 400, "INVALID_PARAMETER")


def test_feeds_are_tenant_scoped(api, team):
    owner, dev, org = team
    other_owner = api.user("other")
    other = api.org(other_owner)
    api.prompt(other_owner, other, "foreign-secret", "t")
    api.prompt(dev, org, "ours", "t")
    items = wait_for_feed(api, org, owner, 0, 1)
    assert "foreign-secret" not in json.dumps(feed(api, org, owner, after=0))
    assert all(i["name"] != "foreign-secret" for i in items)
    assert_error(api.get(f"/v1/orgs/{other}/changes", headers=owner.h), 404)


# -- Server-Sent Events, against a real server ----------------------------------------------------

def serving(container):
    """The app over `container` on a real uvicorn server (SSE needs a socket)."""
    return serving_app(create_app(container))


def read_events(response, count, timeout=10):
    """(ids, types, comments) of the first `count` events."""
    events, comments, current = [], [], {}
    deadline = time.monotonic() + timeout
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            break
        if line.startswith(":"):
            comments.append(line[1:].strip())
        elif line.startswith("id:"):
            current["id"] = int(line[3:].strip())
        elif line.startswith("event:"):
            current["type"] = line[6:].strip()
        elif line.startswith("data:"):
            current["data"] = json.loads(line[5:])
        elif line == "" and current:
            events.append(current)
            current = {}
            if len(events) >= count:
                break
    return events, comments


def test_sse_streams_backlog_then_live_changes_and_resumes(api, team):
    owner, dev, org = team
    start = api.container.app.head_position()
    pid = api.prompt(dev, org, "streamed", "v1 {{x}}")
    api.container.supervisor.wait_for(api.container.app.head_position(), 10)
    with serving(api.container) as base:
        with httpx.Client(base_url=base, timeout=20) as http:
            url = f"/v1/orgs/{org}/changes/stream"
            with http.stream("GET", url, headers=owner.h, params={"after": start}) as response:
                assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
                threading.Timer(0.3, lambda: api.revise(dev, org, pid, 1, "v2 {{x}}")).start()
                events, comments = read_events(response, 2)
            assert [e["type"] for e in events] == ["prompt.created", "prompt.revised"]
            assert "caught-up" in comments and events[0]["data"]["name"] == "streamed"
            # resume after a disconnect: only what came after the last id seen
            api.label(dev, org, pid, "staging", 2)
            with http.stream("GET", url, headers={**owner.h, "Last-Event-ID": str(events[0]["id"])}) as response:
                resumed, _ = read_events(response, 2)
            assert [e["type"] for e in resumed] == ["prompt.revised", "prompt.label_moved"]
            # another tenant's stream is 404, and nothing of it leaks into ours
            stranger = api.user("stranger")
            assert http.get(url, headers=stranger.h).status_code == 404


def test_many_idle_streams_share_one_poller(api, team):
    owner, dev, org = team
    with serving(api.container) as base:
        with httpx.Client(base_url=base, timeout=20, limits=httpx.Limits(max_connections=50)) as http:
            url = f"/v1/orgs/{org}/changes/stream"
            streams = [http.stream("GET", url, headers=owner.h, params={"after": api.container.app.head_position()})
                       for _ in range(20)]
            responses = [s.__enter__() for s in streams]
            try:
                hub = None
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    hubs = [t for t in threading.enumerate() if t.name == "change-feed-hub"]
                    if hubs:
                        hub = hubs
                        break
                    time.sleep(0.05)
                assert hub is not None and len(hub) == 1  # one poller, not one per stream
                api.prompt(dev, org, "fan-out", "t")
                for response in responses:
                    events, _ = read_events(response, 1)
                    assert [e["type"] for e in events] == ["prompt.created"]
            finally:
                for s in streams:
                    s.__exit__(None, None, None)


def test_heartbeats_keep_idle_streams_alive_and_end_them_once_access_is_gone(api, team, monkeypatch):
    """An idle stream gets a `: heartbeat` comment every HEARTBEAT_SECONDS (15 s; shortened here), and
    access is checked again at each: the streams of a revoked key, a removed member and a session that
    logged out end."""
    from interfaces.http.routers import changes as changes_router

    monkeypatch.setattr(changes_router, "HEARTBEAT_SECONDS", 0.3)
    owner, dev, org = team
    key = api.key(owner, org, ["prompts:read"], name="watcher")
    reader = api.user("reader")
    api.add(owner, org, reader, "viewer")
    url = f"/v1/orgs/{org}/changes/stream"
    with serving(api.container) as base:
        with httpx.Client(base_url=base, timeout=20) as http:
            for who, lose_access in (
                (key.h,
                 lambda: api.delete(f"/v1/orgs/{org}/api-keys/{key.id}", headers=owner.h)),
                (dev.h, lambda: api.delete(f"/v1/orgs/{org}/members/{dev.user_id}", headers=owner.h)),
                (reader.h, lambda: api.post("/v1/auth/logout", headers=reader.h)),
            ):
                with http.stream("GET", url, headers=who, params={"start": "now"}) as response:
                    assert response.status_code == 200
                    lines = response.iter_lines()
                    comments = []
                    for line in lines:
                        if line.startswith(":"):
                            comments.append(line[1:].strip())
                        if comments.count("heartbeat") >= 2:
                            break
                    assert comments[:2] == ["connected", "caught-up"]
                    assert lose_access().status_code in (200, 204)
                    started = time.monotonic()
                    rest = list(lines)  # the server ends the stream at its next heartbeat
                    assert time.monotonic() - started < 5
                    assert not any(line.startswith(("id:", "data:")) for line in rest)
