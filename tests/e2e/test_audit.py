"""Audit events over HTTP: audit:read, filters, time range, cursor pagination, request ids."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from tests.e2e.support import assert_error


def test_audit_filters_and_pagination(api):
    owner, dev, reviewer = api.user("owner"), api.user("dev"), api.user("reviewer")
    org = api.org(owner)
    api.add(owner, org, dev, "developer")
    api.add(owner, org, reviewer, "reviewer")
    time.sleep(0.01)
    middle = datetime.now(timezone.utc)
    time.sleep(0.01)
    r = api.post(f"/v1/orgs/{org}/prompts", json={"name": "p", "template": "t"},
                 headers={**dev.h, "X-Request-ID": "req-create-p"})
    pid = r.json()["id"]
    api.revise(dev, org, pid, 1, "t2")
    api.label(reviewer, org, pid, "production", 2)

    def page(**params):
        r = api.q(f"/v1/orgs/{org}/audit-events", reviewer, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    everything = page(limit=200)["items"]
    positions = [e["position"] for e in everything]
    assert positions == sorted(positions, reverse=True)  # newest first
    assert {e["action"] for e in everything} >= {"organisation.created", "organisation.member_added",
                                                 "prompt.created", "prompt.revised", "prompt.label_moved"}
    created = page(action="prompt.created")["items"]
    assert len(created) == 1 and created[0]["request_id"] == "req-create-p" and created[0]["target_id"] == pid
    assert created[0]["actor"] == f"user:{dev.user_id}" and created[0]["details"]["name"] == "p"
    assert {e["action"] for e in page(actor=f"user:{reviewer.user_id}")["items"]} == {"prompt.label_moved"}
    assert {e["target_id"] for e in page(target=pid)["items"]} == {pid}
    recent = page(since=middle.isoformat())["items"]
    assert "organisation.created" not in {e["action"] for e in recent} and len(recent) >= 3
    older = page(until=middle.isoformat())["items"]
    assert {e["action"] for e in older} <= {"organisation.created", "organisation.protected_labels_changed", "organisation.member_added"}
    walked, cursor = [], None
    while True:
        data = page(limit=2, **({"cursor": cursor} if cursor else {}))
        walked += data["items"]
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert [e["position"] for e in walked] == positions
    assert_error(api.q(f"/v1/orgs/{org}/audit-events", reviewer, params={"cursor": "!!"}), 400, "INVALID_CURSOR")
    assert_error(api.q(f"/v1/orgs/{org}/audit-events", reviewer, params={"since": "noon"}), 400, "INVALID_TIMESTAMP")


def test_audit_needs_audit_read(api):
    owner, dev, viewer = api.user("owner"), api.user("dev"), api.user("viewer")
    org = api.org(owner)
    api.add(owner, org, dev, "developer")
    api.add(owner, org, viewer, "viewer")
    for who in (dev, viewer):
        assert_error(api.get(f"/v1/orgs/{org}/audit-events", headers=who.h), 403, "PERMISSION_DENIED")
    assert api.get(f"/v1/orgs/{org}/audit-events", headers=owner.h).status_code == 200
