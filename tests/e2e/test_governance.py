"""Governance over HTTP (issue 10), on SQLite and Postgres: protected labels, review requests (four
eyes, quorum, superseded), the reviewer role, releases and rollbacks, label snapshots as of T, and
traffic splits (deterministic by-name fetch).

Six users per backend (module-scoped: logins are throttled); each test opens its own organisation
with `production` protected, as the product does by default."""
from __future__ import annotations

import hashlib
import struct
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from tests.e2e.support import Api, Key, User, assert_error

ALL_PERMISSIONS = ["prompts:read", "prompts:write", "prompts:promote", "prompts:review", "members:manage",
                   "api_keys:manage", "audit:read", "org:manage"]
DEFAULT_ROLES = ["admin", "owner", "reviewer"]


@pytest.fixture(scope="module")
def web(module_api) -> Api:
    return module_api


@pytest.fixture(scope="module")
def people(web) -> SimpleNamespace:
    return SimpleNamespace(owner=web.user("gov-owner"), admin=web.user("gov-admin"), dev=web.user("gov-dev"),
                           rev=web.user("gov-rev"), rev2=web.user("gov-rev2"), viewer=web.user("gov-viewer"))


@dataclass
class Team:
    web: Api
    org: str
    owner: User
    admin: User
    dev: User
    rev: User
    rev2: User
    viewer: User

    # -- urls ------------------------------------------------------------------------------------
    @property
    def reviews(self) -> str:
        return f"/v1/orgs/{self.org}/review-requests"

    @property
    def releases(self) -> str:
        return f"/v1/orgs/{self.org}/releases"

    def prompt_url(self, pid: str, *rest: str) -> str:
        return "/".join([f"/v1/orgs/{self.org}/prompts/{pid}", *rest])

    # -- commands --------------------------------------------------------------------------------
    def prompt(self, name: str, versions: int = 3) -> str:
        pid = self.web.prompt(self.owner, self.org, name=name, template=f"{name} line one\nv1 {{{{x}}}}")
        for n in range(2, versions + 1):
            self.web.revise(self.owner, self.org, pid, n - 1, f"{name} line one\nv{n} {{{{x}}}}")
        return pid

    def request(self, who, pid: str, label: str = "production", expected: int = 0, reason: str = "why", **target):
        return self.web.post(self.reviews, headers=who.h, json={"prompt_id": pid, "label": label,
                                                                "expected_version": expected, "reason": reason,
                                                                **target})

    def requested(self, who, pid: str, label: str = "production", expected: int = 0, **target) -> str:
        r = self.request(who, pid, label, expected, **target)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "open"
        return r.json()["id"]

    def approve(self, who, review_id: str, comment: str = "ok"):
        return self.web.post(f"{self.reviews}/{review_id}/approve", headers=who.h, json={"comment": comment})

    def approved(self, who, review_id: str) -> dict:
        r = self.approve(who, review_id)
        assert r.status_code == 200, r.text
        return r.json()

    def promote(self, pid: str, version: int, expected: int, label: str = "production") -> None:
        """Through review: rev asks, admin approves."""
        assert self.approved(self.admin, self.requested(self.rev, pid, label, expected, version=version))[
            "status"] == "applied"

    def protect(self, labels: list[str], **policies) -> None:
        body = {"protected_labels": labels, **({"review_policies": policies} if policies else {})}
        r = self.web.patch(f"/v1/orgs/{self.org}", headers=self.owner.h, json=body)
        assert r.status_code == 200, r.text

    def move(self, who, pid: str, label: str, version: int | None = None, **body):
        return self.web.put(self.prompt_url(pid, "labels", label), headers=who.h,
                            json={**({"version": version} if version is not None else {}), **body})

    def key(self, who, permissions: list[str]) -> Key:
        return self.web.key(who, self.org, permissions)

    # -- reads -----------------------------------------------------------------------------------
    def q(self, url: str, who=None, **params) -> dict:
        r = self.web.q(url, who or self.owner, params=params)
        assert r.status_code == 200, (url, r.status_code, r.text)
        return r.json()

    def labels(self, pid: str) -> dict:
        body = self.q(self.prompt_url(pid))
        return {k: v for k, v in body["labels"].items() if k != "latest"}

    def splits(self, pid: str) -> dict:
        return self.q(self.prompt_url(pid))["splits"]

    def review(self, review_id: str) -> dict:
        return self.q(f"{self.reviews}/{review_id}")

    def history(self, pid: str, label: str | None = None) -> list[dict]:
        return self.q(self.prompt_url(pid, "labels", "history"), **({"label": label} if label else {}))["items"]

    def audit(self, action: str) -> list[dict]:
        return self.q(f"/v1/orgs/{self.org}/audit-events", action=action, limit=200)["items"]


@pytest.fixture
def team(web, people) -> Team:
    p = people
    org = web.org(p.owner, "Governed", protected=True)
    r = web.patch(f"/v1/orgs/{org}", json={"plan": "PRO"}, headers=p.owner.h)
    assert r.status_code == 200, r.text
    for user, role in ((p.admin, "admin"), (p.dev, "developer"), (p.rev, "reviewer"), (p.rev2, "reviewer"),
                       (p.viewer, "viewer")):
        web.add(p.owner, org, user, role)
    return Team(web, org, p.owner, p.admin, p.dev, p.rev, p.rev2, p.viewer)


def actor(user: User) -> str:
    return f"user:{user.user_id}"


def instant() -> str:
    """Now, strictly between the events before and after (RFC 3339, Z)."""
    time.sleep(0.02)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(0.02)
    return now


# ================================================================================================
# Protected labels
# ================================================================================================


def test_a_new_organisation_protects_production_with_the_default_policy(team):
    body = team.q(f"/v1/orgs/{team.org}")

    assert body["protected_labels"] == ["production"]
    assert body["review_policies"] == {"production": {"approvals": 1, "approver_roles": DEFAULT_ROLES}}


def test_nobody_moves_or_removes_a_protected_label_directly(team):
    pid = team.prompt("guarded", 2)
    team.promote(pid, 1, 0)
    key = team.key(team.owner, ALL_PERMISSIONS)
    route = f"/v1/orgs/{team.org}/review-requests"

    for who in (team.owner, team.admin, team.rev, key):
        for body in ({"version": 2, "expected_version": 1}, {"version": 2},
                     {"split": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], "expected_version": 1}):
            err = assert_error(team.web.put(team.prompt_url(pid, "labels", "production"), headers=who.h, json=body),
                               409, "LABEL_PROTECTED")
            assert err["error"]["details"]["review_requests"] == route
            assert err["error"]["details"]["label"] == "production"
        for params in ({}, {"expected_version": 1}):
            err = assert_error(team.web.delete(team.prompt_url(pid, "labels", "production"), headers=who.h,
                                               params=params), 409, "LABEL_PROTECTED")
            assert err["error"]["details"]["review_requests"] == route
        # the label's case and whitespace do not get around it
        assert_error(team.move(who, pid, "Production", 2), 409, "LABEL_PROTECTED")
    for who in (team.dev, team.viewer):  # cannot move production at all
        assert team.move(who, pid, "production", 2).status_code in (403, 409)
        assert team.web.delete(team.prompt_url(pid, "labels", "production"), headers=who.h).status_code in (403, 409)

    assert team.labels(pid) == {"production": 1}
    assert [h["to_version"] for h in team.history(pid, "production")] == [1]


def test_a_protected_label_that_is_not_set_is_refused_as_protected(team):
    pid = team.prompt("unset", 1)

    assert_error(team.move(team.owner, pid, "production", 1, expected_version=0), 409, "LABEL_PROTECTED")
    assert_error(team.web.delete(team.prompt_url(pid, "labels", "production"), headers=team.owner.h), 409,
                 "LABEL_PROTECTED")


def test_unprotected_labels_keep_the_direct_compare_and_set(team):
    pid = team.prompt("direct", 3)

    r = team.move(team.dev, pid, "staging", 1, expected_version=0)
    assert r.status_code == 200, r.text
    assert_error(team.move(team.dev, pid, "staging", 2, expected_version=0), 409, "LABEL_CONFLICT")
    assert team.move(team.dev, pid, "staging", 2, expected_version=1).status_code == 200
    r = team.web.delete(team.prompt_url(pid, "labels", "staging"), headers=team.dev.h, params={"expected_version": 2})
    assert r.status_code == 200, r.text
    assert team.labels(pid) == {}


def test_protected_labels_are_changed_by_owners_only_and_audited(team):
    for who in (team.admin, team.rev, team.dev, team.viewer):
        r = team.web.patch(f"/v1/orgs/{team.org}", headers=who.h, json={"protected_labels": []})
        assert_error(r, 403, "PERMISSION_DENIED")
        assert_error(team.web.patch(f"/v1/orgs/{team.org}", headers=who.h,
                                    json={"review_policies": {"production": {"approvals": 2}}}), 403,
                     "PERMISSION_DENIED")
    assert team.q(f"/v1/orgs/{team.org}")["protected_labels"] == ["production"]

    r = team.web.patch(f"/v1/orgs/{team.org}", headers={**team.owner.h, "X-Request-ID": "req-protect"},
                       json={"protected_labels": ["production", "EU-Production"],
                             "review_policies": {"production": {"approvals": 2, "approver_roles": ["owner", "admin"]}}})
    assert r.status_code == 200, r.text

    body = team.q(f"/v1/orgs/{team.org}")
    assert body["protected_labels"] == ["eu-production", "production"]
    assert body["review_policies"] == {
        "eu-production": {"approvals": 1, "approver_roles": DEFAULT_ROLES},
        "production": {"approvals": 2, "approver_roles": ["admin", "owner"]}}
    events = team.audit("organisation.protected_labels_changed")
    mine = [e for e in events if e["request_id"] == "req-protect"]
    assert len(mine) == 1
    assert mine[0]["actor"] == actor(team.owner) and mine[0]["target_id"] == team.org
    assert mine[0]["details"]["protected_labels"] == ["eu-production", "production"]
    assert mine[0]["details"]["review_policies"] == {"production": {"approvals": 2,
                                                                    "approver_roles": ["admin", "owner"]}}


def test_protecting_another_label_and_unprotecting_production(team):
    pid = team.prompt("switch", 2)
    team.protect(["eu-production"])

    assert team.move(team.rev, pid, "production", 1, expected_version=0).status_code == 200
    assert_error(team.move(team.owner, pid, "eu-production", 1), 409, "LABEL_PROTECTED")
    assert_error(team.request(team.rev, pid, "production", 1, version=2), 409, "LABEL_NOT_PROTECTED")
    rid = team.requested(team.rev, pid, "eu-production", 0, version=2)
    assert team.approved(team.admin, rid)["status"] == "applied"
    assert team.labels(pid) == {"production": 1, "eu-production": 2}


@pytest.mark.parametrize("body,code", [
    ({"protected_labels": ["production"], "review_policies": {"staging": {"approvals": 1}}}, "INVALID_REVIEW_POLICY"),
    ({"review_policies": {"production": {"approver_roles": ["boss"]}}}, "UNKNOWN_ROLE"),
    ({"review_policies": {"production": {"approver_roles": []}}}, "INVALID_REVIEW_POLICY"),
    ({"protected_labels": ["latest"]}, "LABEL_RESERVED"),
    ({"protected_labels": ["has space"]}, "INVALID_LABEL"),
])
def test_bad_protected_labels_or_policies_are_refused(team, body, code):
    assert_error(team.web.patch(f"/v1/orgs/{team.org}", headers=team.owner.h, json=body), 422, code)
    assert team.q(f"/v1/orgs/{team.org}")["protected_labels"] == ["production"]


@pytest.mark.parametrize("approvals", [0, 6, True, "2"])
def test_a_quorum_out_of_range_is_refused(team, approvals):
    r = team.web.patch(f"/v1/orgs/{team.org}", headers=team.owner.h,
                       json={"review_policies": {"production": {"approvals": approvals}}})
    assert r.status_code == 422, r.text
    assert_error(r, 422)


# ================================================================================================
# Review requests
# ================================================================================================


def test_a_request_approved_by_someone_else_applies_the_move_with_the_review_on_record(team):
    pid = team.prompt("refund", 2)

    r = team.request(team.rev, pid, "production", 0, version=2, reason="kinder wording")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "open" and set(created) >= {"id", "status", "position"}
    rid = created["id"]
    assert team.labels(pid) == {}, "nothing moves before the approval"

    review = team.review(rid)
    assert (review["id"], review["kind"], review["label"], review["status"], review["reason"]) == (
        rid, "label", "production", "open", "kinder wording")
    assert review["requested_by"] == review["requester"] == actor(team.rev)
    assert (review["approvals_required"], review["approvals"]) == (1, [])
    assert review["approver_roles"] == sorted(DEFAULT_ROLES)
    (move,) = review["moves"]
    assert (move["prompt_id"], move["name"], move["version"], move["expected_version"], move["current"]) == (
        pid, "refund", 2, 0, None)
    assert move["diff"].startswith("--- (unset)\n+++ v2\n") and "+v2 {{x}}" in move["diff"]

    decided = team.approved(team.admin, rid)
    assert (decided["id"], decided["status"], decided["release_id"]) == (rid, "applied", None)

    assert team.labels(pid) == {"production": 2}
    review = team.review(rid)
    assert review["status"] == "applied"
    assert [(a["by"], a["approver"], a["comment"]) for a in review["approvals"]] == [
        (actor(team.admin), actor(team.admin), "ok")]
    (moved,) = team.history(pid, "production")
    assert (moved["from_version"], moved["to_version"], moved["review_id"], moved["requested_by"],
            moved["approved_by"], moved["actor"]) == (None, 2, rid, actor(team.rev), [actor(team.admin)],
                                                      actor(team.admin))
    for action in ("review_request.requested", "review_request.approved", "review_request.applied"):
        (event,) = [e for e in team.audit(action) if e["target_id"] == rid]
        assert event["actor"] == actor(team.rev if action.endswith("requested") else team.admin)
    (label_event,) = [e for e in team.audit("prompt.label_moved") if e["target_id"] == pid]
    assert label_event["details"]["review_id"] == rid


def test_a_direct_move_shows_no_review_in_the_history(team):
    pid = team.prompt("plain", 1)
    assert team.move(team.dev, pid, "staging", 1).status_code == 200

    (moved,) = team.history(pid)
    assert (moved["review_id"], moved["requested_by"], moved["approved_by"]) == (None, None, [])


def test_the_review_shows_the_diff_from_the_current_version_to_the_proposed_one(team):
    pid = team.prompt("diffed", 3)
    team.promote(pid, 1, 0)

    rid = team.requested(team.rev, pid, "production", 1, version=3)
    (move,) = team.review(rid)["moves"]

    assert move["current"] == {"version": 1, "split": None}
    assert move["diff"].startswith("--- v1\n+++ v3\n")
    assert "-v1 {{x}}" in move["diff"] and "+v3 {{x}}" in move["diff"] and " diffed line one" in move["diff"]


def test_the_requester_cannot_approve_nor_reject_even_with_a_key_they_issued(team):
    pid = team.prompt("self", 2)
    admin_key = team.key(team.admin, ["prompts:read", "prompts:promote", "prompts:review"])

    by_admin = team.requested(team.admin, pid, "production", 0, version=1)
    by_key = team.requested(admin_key, pid, "production", 0, version=2)
    assert team.review(by_key)["requested_by"] == f"api_key:{admin_key.id}"
    assert team.review(by_key)["requester"] == actor(team.admin)

    for review_id in (by_admin, by_key):
        for who in (team.admin, admin_key):
            assert_error(team.approve(who, review_id), 403, "SELF_APPROVAL")
            assert_error(team.web.post(f"{team.reviews}/{review_id}/reject", headers=who.h, json={"comment": "x"}),
                         403, "SELF_APPROVAL")
        assert team.review(review_id)["status"] == "open"
    assert team.labels(pid) == {}

    owner_key = team.key(team.owner, ["prompts:read", "prompts:review"])
    assert team.approved(owner_key, by_key)["status"] == "applied"
    review = team.review(by_key)
    assert [(a["by"], a["approver"]) for a in review["approvals"]] == [(f"api_key:{owner_key.id}", actor(team.owner))]
    assert team.labels(pid) == {"production": 2}


def test_the_reviewer_role_requests_and_reviews_and_developers_and_viewers_do_neither(team):
    pid = team.prompt("roles", 3)

    for who in (team.dev, team.viewer):
        err = assert_error(team.request(who, pid, "production", 0, version=1), 403, "PERMISSION_DENIED")
        assert err["error"]["details"]["required"] == "prompts:promote"
    rid = team.requested(team.rev, pid, "production", 0, version=1)
    for who in (team.dev, team.viewer):
        err = assert_error(team.approve(who, rid), 403, "PERMISSION_DENIED")
        assert err["error"]["details"]["required"] == "prompts:review"
        assert_error(team.web.post(f"{team.reviews}/{rid}/reject", headers=who.h, json={}), 403, "PERMISSION_DENIED")
    # every approving role may approve someone else's request
    assert team.approved(team.rev2, rid)["status"] == "applied"
    assert team.approved(team.owner, team.requested(team.rev, pid, "production", 1, version=2))["status"] == "applied"
    assert team.approved(team.admin, team.requested(team.owner, pid, "production", 2, version=3))["status"] == "applied"
    assert team.labels(pid) == {"production": 3}
    # and everyone reads them
    for who in (team.dev, team.viewer):
        assert len(team.q(team.reviews, who, prompt_id=pid)["items"]) == 3


def test_the_role_matrix_shows_prompts_review_for_the_approving_roles_only(team):
    expected = {"owner": set(ALL_PERMISSIONS), "admin": set(ALL_PERMISSIONS) - {"org:manage"},
                "developer": {"prompts:read", "prompts:write"},
                "reviewer": {"prompts:read", "prompts:promote", "prompts:review", "audit:read"},
                "viewer": {"prompts:read"}}
    for role, who in (("owner", team.owner), ("admin", team.admin), ("developer", team.dev), ("reviewer", team.rev),
                      ("viewer", team.viewer)):
        body = team.q(f"/v1/orgs/{team.org}", who)
        assert body["role"] == role
        assert set(body["permissions"]) == expected[role], role


def test_a_quorum_needs_distinct_people_with_an_approving_role(team):
    team.protect(["production"], production={"approvals": 2, "approver_roles": ["admin", "reviewer"]})
    pid = team.prompt("quorum", 2)
    admin_key = team.key(team.admin, ["prompts:read", "prompts:review"])

    rid = team.requested(team.owner, pid, "production", 0, version=2)
    assert team.review(rid)["approvals_required"] == 2
    assert team.review(rid)["approver_roles"] == ["admin", "reviewer"]

    assert team.approved(team.rev, rid)["status"] == "open"
    assert team.labels(pid) == {}
    assert_error(team.approve(team.rev, rid), 409, "ALREADY_APPROVED")
    err = assert_error(team.approve(team.owner, team.requested(team.rev, pid, "production", 0, version=1)), 403,
                       "APPROVER_ROLE_REQUIRED")
    assert err["error"]["details"] == {"role": "owner", "allowed": ["admin", "reviewer"]}

    assert team.approved(team.admin, rid)["status"] == "applied"
    assert team.labels(pid) == {"production": 2}
    review = team.review(rid)
    assert [a["approver"] for a in review["approvals"]] == [actor(team.rev), actor(team.admin)]
    (moved,) = team.history(pid, "production")
    assert moved["approved_by"] == [actor(team.rev), actor(team.admin)]
    assert moved["requested_by"] == actor(team.owner)

    # the same person through a key they issued is still one approval
    other = team.requested(team.owner, pid, "production", 2, version=1)
    assert team.approved(team.admin, other)["status"] == "open"
    assert_error(team.approve(admin_key, other), 409, "ALREADY_APPROVED")
    assert team.labels(pid) == {"production": 2}


def test_a_request_keeps_the_policy_it_was_made_under(team):
    pid = team.prompt("policy", 2)
    rid = team.requested(team.rev, pid, "production", 0, version=2)
    team.protect(["production"], production={"approvals": 3})

    assert team.approved(team.admin, rid)["status"] == "applied"


def test_an_approval_after_the_label_moved_meanwhile_supersedes_the_request(team):
    pid = team.prompt("moved", 3)
    team.promote(pid, 1, 0)
    rid = team.requested(team.rev, pid, "production", 1, version=2)
    team.protect([])
    assert team.move(team.owner, pid, "production", 3, expected_version=1).status_code == 200
    team.protect(["production"])

    err = assert_error(team.approve(team.admin, rid), 409, "REVIEW_SUPERSEDED")
    (conflict,) = err["error"]["details"]["conflicts"]
    assert (conflict["prompt_id"], conflict["code"], conflict["expected_version"], conflict["current_version"]) == (
        pid, "LABEL_CONFLICT", 1, 3)
    team.web.position = max(team.web.position, err["error"]["details"]["position"])

    review = team.review(rid)
    assert review["status"] == "superseded" and review["approvals"] == []
    assert review["conflicts"][0]["current_version"] == 3
    assert team.labels(pid) == {"production": 3}
    assert_error(team.approve(team.rev2, rid), 409, "REVIEW_NOT_OPEN")
    assert [e for e in team.audit("review_request.superseded") if e["target_id"] == rid]


def test_another_request_applied_first_supersedes_the_competing_one(team):
    pid = team.prompt("race", 3)
    first = team.requested(team.rev, pid, "production", 0, version=2)
    second = team.requested(team.rev2, pid, "production", 0, version=3)

    assert team.approved(team.admin, first)["status"] == "applied"
    refused = team.approve(team.admin, second)
    assert_error(refused, 409, "REVIEW_SUPERSEDED")
    # the refusal recorded the supersession: its position comes back so reads can wait for it
    assert int(refused.headers["x-event-position"]) == refused.json()["error"]["details"]["position"]

    assert team.labels(pid) == {"production": 2}
    assert team.q(team.reviews, status="superseded", prompt_id=pid)["items"][0]["id"] == second
    assert len(team.history(pid, "production")) == 1


def test_a_stale_or_impossible_request_is_refused_when_made(team):
    pid = team.prompt("stale", 2)
    team.promote(pid, 1, 0)

    err = assert_error(team.request(team.rev, pid, "production", 0, version=2), 409, "LABEL_CONFLICT")
    assert err["error"]["details"]["current_version"] == 1
    assert_error(team.request(team.rev, pid, "production", 1, version=9), 404, "VERSION_NOT_FOUND")
    assert_error(team.request(team.rev, pid, "staging", 0, version=1), 409, "LABEL_NOT_PROTECTED")
    assert_error(team.request(team.rev, pid, "production", 1), 422)  # neither version, split nor remove
    assert_error(team.request(team.rev, pid, "production", 1, version=2, remove=True), 422)
    assert_error(team.request(team.rev, "00000000-0000-4000-8000-000000000000", "production", 0, version=1), 404,
                 "PROMPT_NOT_FOUND")
    assert_error(team.request(team.rev, pid, "production", 1, version=2, reason="x" * 2001), 422)


def test_a_removal_goes_through_review_too(team):
    pid = team.prompt("removed", 1)
    team.promote(pid, 1, 0)

    assert_error(team.request(team.rev, pid, "production", 0, remove=True), 409, "LABEL_CONFLICT")
    rid = team.requested(team.rev, pid, "production", 1, remove=True)
    (move,) = team.review(rid)["moves"]
    assert move["version"] is None and move["diff"] is None
    assert team.approved(team.admin, rid)["status"] == "applied"

    assert team.labels(pid) == {}
    removal = team.history(pid, "production")[-1]
    assert (removal["from_version"], removal["to_version"], removal["review_id"]) == (1, None, rid)


def test_withdraw_is_for_the_requester_only(team):
    pid = team.prompt("withdrawn", 1)
    rid = team.requested(team.rev, pid, "production", 0, version=1)

    for who in (team.admin, team.owner, team.rev2):
        assert_error(team.web.post(f"{team.reviews}/{rid}/withdraw", headers=who.h), 403, "NOT_THE_REQUESTER")
    r = team.web.post(f"{team.reviews}/{rid}/withdraw", headers=team.rev.h)
    assert r.status_code == 200 and r.json()["status"] == "withdrawn", r.text

    assert_error(team.approve(team.admin, rid), 409, "REVIEW_NOT_OPEN")
    assert_error(team.web.post(f"{team.reviews}/{rid}/withdraw", headers=team.rev.h), 409, "REVIEW_NOT_OPEN")
    review = team.review(rid)
    assert (review["status"], review["decided_by"]) == ("withdrawn", actor(team.rev))
    assert team.labels(pid) == {}


def test_reject_closes_the_request_with_the_comment(team):
    pid = team.prompt("rejected", 1)
    rid = team.requested(team.rev, pid, "production", 0, version=1)

    r = team.web.post(f"{team.reviews}/{rid}/reject", headers=team.admin.h, json={"comment": "wrong tone"})
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text

    review = team.review(rid)
    assert (review["status"], review["decided_by"], review["comment"]) == ("rejected", actor(team.admin), "wrong tone")
    assert_error(team.approve(team.rev2, rid), 409, "REVIEW_NOT_OPEN")
    assert team.labels(pid) == {}
    assert [e for e in team.audit("review_request.rejected") if e["target_id"] == rid][0]["details"][
        "comment"] == "wrong tone"


def test_listing_filters_by_status_and_prompt_newest_first(team):
    a, b = team.prompt("list-a", 2), team.prompt("list-b", 2)
    ra1 = team.requested(team.rev, a, "production", 0, version=1)
    rb = team.requested(team.rev, b, "production", 0, version=1)
    ra2 = team.requested(team.rev, a, "production", 0, version=2)
    team.approved(team.admin, ra1)  # ra2 now stale but still open

    assert sorted(i["id"] for i in team.q(team.reviews)["items"]) == sorted([ra1, ra2, rb])
    assert sorted(i["id"] for i in team.q(team.reviews, prompt_id=a)["items"]) == sorted([ra1, ra2])
    assert [i["id"] for i in team.q(team.reviews, status="open")["items"]] == [ra2, rb]
    assert [i["id"] for i in team.q(team.reviews, status="applied")["items"]] == [ra1]
    assert [i["id"] for i in team.q(team.reviews, status="open", prompt_id=b)["items"]] == [rb]
    assert team.q(team.reviews, status="withdrawn")["items"] == []
    assert all(i["moves"][0]["diff"] is None for i in team.q(team.reviews)["items"]), "diffs on the single read"


def test_unknown_or_foreign_review_requests_are_not_found(team, web, people):
    pid = team.prompt("foreign", 1)
    rid = team.requested(team.rev, pid, "production", 0, version=1)
    other = web.org(people.admin, "Elsewhere", protected=True)

    for url in (f"{team.reviews}/00000000-0000-4000-8000-000000000000", f"{team.reviews}/not-a-uuid"):
        assert_error(web.q(url, team.owner), 404, "REVIEW_NOT_FOUND")
    assert_error(web.q(f"/v1/orgs/{other}/review-requests/{rid}", people.admin), 404, "REVIEW_NOT_FOUND")
    assert_error(web.post(f"/v1/orgs/{other}/review-requests/{rid}/approve", headers=people.admin.h, json={}), 404,
                 "REVIEW_NOT_FOUND")
    assert team.review(rid)["status"] == "open"


# ================================================================================================
# Releases
# ================================================================================================


def test_a_release_moves_every_prompt_in_one_step_and_is_recorded(team):
    a, b, c = team.prompt("rel-a", 2), team.prompt("rel-b", 2), team.prompt("rel-c", 2)
    assert team.move(team.dev, a, "staging", 1).status_code == 200

    r = team.web.post(team.releases, headers=team.dev.h, json={"label": "staging", "reason": "spring", "moves": [
        {"prompt_id": a, "version": 2, "expected_version": 1}, {"name": "rel-b", "version": 2, "expected_version": 0},
        {"prompt_id": c, "split": [{"version": 1, "weight": 80}, {"version": 2, "weight": 20}],
         "expected_version": 0}]})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "applied" and r.json()["review_id"] is None
    release_id = r.json()["release_id"]

    assert [team.labels(p) for p in (a, b, c)] == [{"staging": 2}, {"staging": 2}, {"staging": 1}]
    assert team.splits(c) == {"staging": [{"version": 1, "weight": 80}, {"version": 2, "weight": 20}]}
    release = team.q(f"{team.releases}/{release_id}")
    assert (release["id"], release["label"], release["reason"], release["review_id"], release["rollback_of"],
            release["rolled_back_by"], release["created_by"]) == (release_id, "staging", "spring", None, None, None,
                                                                  actor(team.dev))
    assert [(m["prompt_id"], m["name"], m["from"], m["to"]) for m in release["moves"]] == [
        (a, "rel-a", {"version": 1, "split": None}, {"version": 2, "split": None}),
        (b, "rel-b", None, {"version": 2, "split": None}),
        (c, "rel-c", None, {"version": None, "split": [{"version": 1, "weight": 80}, {"version": 2, "weight": 20}]})]
    assert release_id in [i["id"] for i in team.q(team.releases, label="staging")["items"]]
    assert team.q(team.releases, label="production")["items"] == []
    assert [e for e in team.audit("release.created") if e["target_id"] == release_id]
    # one save: the three label moves and the release are consecutive in the log
    positions = sorted(team.history(p, "staging")[-1]["position"] for p in (a, b, c))
    assert positions == [release["position"] - 3, release["position"] - 2, release["position"] - 1]


def test_one_stale_expectation_moves_nothing_and_every_conflict_is_listed(team):
    a, b, c = team.prompt("all-a", 2), team.prompt("all-b", 2), team.prompt("all-c", 2)
    for p in (a, b):
        assert team.move(team.dev, p, "staging", 1).status_code == 200

    r = team.web.post(team.releases, headers=team.dev.h, json={"label": "staging", "moves": [
        {"prompt_id": a, "version": 2, "expected_version": 0}, {"prompt_id": b, "version": 2, "expected_version": 1},
        {"prompt_id": c, "version": 2, "expected_version": 1}]})
    err = assert_error(r, 409, "RELEASE_CONFLICT")

    conflicts = err["error"]["details"]["conflicts"]
    assert sorted((x["prompt_id"], x["expected_version"], x["current_version"]) for x in conflicts) == sorted(
        [(a, 0, 1), (c, 1, None)])
    assert [team.labels(p) for p in (a, b, c)] == [{"staging": 1}, {"staging": 1}, {}]
    assert team.q(team.releases)["items"] == []


@pytest.mark.parametrize("moves,status,code", [
    ([], 422, None),
    ([{"name": "dup", "version": 1, "expected_version": 0}, {"name": "DUP", "version": 1, "expected_version": 0}],
     422, "INVALID_MOVES"),
    ([{"name": "nobody", "version": 1, "expected_version": 0}], 404, "PROMPT_NOT_FOUND"),
    ([{"name": "dup", "version": 5, "expected_version": 0}], 404, "VERSION_NOT_FOUND"),
    ([{"name": "dup", "version": 1}], 422, None),
    ([{"name": "dup", "split": [{"version": 1, "weight": 60}, {"version": 1, "weight": 40}], "expected_version": 0}],
     422, "INVALID_SPLIT"),
])
def test_bad_releases_are_refused(team, moves, status, code):
    team.prompt("dup", 1)

    assert_error(team.web.post(team.releases, headers=team.dev.h, json={"label": "staging", "moves": moves}),
                 status, code)
    assert team.q(team.releases)["items"] == []


def test_a_release_of_a_protected_label_waits_for_review_and_applies_all_at_once(team):
    a, b = team.prompt("prot-a", 2), team.prompt("prot-b", 2)
    team.promote(a, 1, 0)

    r = team.web.post(team.releases, headers=team.rev.h, json={"label": "production", "reason": "big one", "moves": [
        {"prompt_id": a, "version": 2, "expected_version": 1}, {"name": "prot-b", "version": 2,
                                                               "expected_version": 0}]})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "review_requested" and r.json()["release_id"] is None
    rid = r.json()["review_id"]
    assert [team.labels(p) for p in (a, b)] == [{"production": 1}, {}]
    review = team.review(rid)
    assert review["kind"] == "release" and [m["prompt_id"] for m in review["moves"]] == [a, b]
    assert review["moves"][0]["current"] == {"version": 1, "split": None}
    assert "-v1 {{x}}" in review["moves"][0]["diff"] and "+v2 {{x}}" in review["moves"][0]["diff"]

    assert_error(team.approve(team.rev, rid), 403, "SELF_APPROVAL")
    decided = team.approved(team.admin, rid)
    assert decided["status"] == "applied" and decided["release_id"]

    assert [team.labels(p) for p in (a, b)] == [{"production": 2}, {"production": 2}]
    release = team.q(f"{team.releases}/{decided['release_id']}")
    assert release["review_id"] == rid and release["label"] == "production"
    for p in (a, b):
        moved = team.history(p, "production")[-1]
        assert (moved["review_id"], moved["requested_by"], moved["approved_by"]) == (
            rid, actor(team.rev), [actor(team.admin)])


def test_a_reviewed_release_is_superseded_whole_when_one_label_moved(team):
    a, b = team.prompt("sup-a", 2), team.prompt("sup-b", 2)
    r = team.web.post(team.releases, headers=team.rev.h, json={"label": "production", "moves": [
        {"prompt_id": a, "version": 2, "expected_version": 0}, {"prompt_id": b, "version": 2, "expected_version": 0}]})
    assert r.status_code == 202, r.text
    team.promote(b, 1, 0)

    err = assert_error(team.approve(team.admin, r.json()["review_id"]), 409, "REVIEW_SUPERSEDED")
    assert [c["prompt_id"] for c in err["error"]["details"]["conflicts"]] == [b]
    assert [team.labels(p) for p in (a, b)] == [{}, {"production": 1}]
    assert team.q(team.releases)["items"] == []


def test_a_rollback_puts_every_label_back_in_one_step(team):
    a, b = team.prompt("back-a", 3), team.prompt("back-b", 2)
    assert team.move(team.dev, a, "staging", 1).status_code == 200
    r = team.web.post(team.releases, headers=team.dev.h, json={"label": "staging", "moves": [
        {"prompt_id": a, "version": 3, "expected_version": 1}, {"prompt_id": b, "version": 2, "expected_version": 0}]})
    release_id = r.json()["release_id"]

    r = team.web.post(f"{team.releases}/{release_id}/rollback", headers=team.dev.h, json={"reason": "broke refunds"})
    assert r.status_code == 201, r.text
    rollback_id = r.json()["release_id"]

    assert [team.labels(p) for p in (a, b)] == [{"staging": 1}, {}], "b's label was unset before: removed"
    rollback = team.q(f"{team.releases}/{rollback_id}")
    assert (rollback["rollback_of"], rollback["reason"]) == (release_id, "broke refunds")
    assert [(m["from"], m["to"]) for m in rollback["moves"]] == [
        ({"version": 3, "split": None}, {"version": 1, "split": None}), ({"version": 2, "split": None}, None)]
    assert team.q(f"{team.releases}/{release_id}")["rolled_back_by"] == rollback_id
    assert [e for e in team.audit("release.rolled_back") if e["target_id"] == release_id]

    err = assert_error(team.web.post(f"{team.releases}/{release_id}/rollback", headers=team.dev.h,
                                     json={"reason": "again"}), 409, "RELEASE_ROLLED_BACK")
    assert err["error"]["details"]["rollback"] == rollback_id
    assert [team.labels(p) for p in (a, b)] == [{"staging": 1}, {}]


def test_a_rollback_never_overwrites_a_later_move(team):
    a, b = team.prompt("later-a", 3), team.prompt("later-b", 2)
    r = team.web.post(team.releases, headers=team.dev.h, json={"label": "staging", "moves": [
        {"prompt_id": a, "version": 2, "expected_version": 0}, {"prompt_id": b, "version": 2, "expected_version": 0}]})
    release_id = r.json()["release_id"]
    assert team.move(team.dev, a, "staging", 3, expected_version=2).status_code == 200

    err = assert_error(team.web.post(f"{team.releases}/{release_id}/rollback", headers=team.dev.h,
                                     json={"reason": "undo"}), 409, "RELEASE_CONFLICT")
    assert [c["prompt_id"] for c in err["error"]["details"]["conflicts"]] == [a]
    assert [team.labels(p) for p in (a, b)] == [{"staging": 3}, {"staging": 2}]
    assert team.q(f"{team.releases}/{release_id}")["rolled_back_by"] is None


def test_a_rollback_needs_a_reason_and_an_existing_release(team):
    assert_error(team.web.post(f"{team.releases}/00000000-0000-4000-8000-000000000000/rollback", headers=team.dev.h,
                               json={"reason": "x"}), 404, "RELEASE_NOT_FOUND")
    assert_error(team.web.q(f"{team.releases}/not-a-uuid", team.dev), 404, "RELEASE_NOT_FOUND")
    assert_error(team.web.q(f"{team.releases}/00000000-0000-4000-8000-000000000000", team.dev), 404,
                 "RELEASE_NOT_FOUND")
    pid = team.prompt("reasons", 1)
    r = team.web.post(team.releases, headers=team.dev.h, json={"label": "staging", "moves": [
        {"prompt_id": pid, "version": 1, "expected_version": 0}]})
    assert_error(team.web.post(f"{team.releases}/{r.json()['release_id']}/rollback", headers=team.dev.h, json={}), 422)


def test_a_rollback_of_a_protected_label_goes_through_review(team):
    a, b = team.prompt("prb-a", 2), team.prompt("prb-b", 2)
    team.promote(a, 1, 0)
    r = team.web.post(team.releases, headers=team.rev.h, json={"label": "production", "moves": [
        {"prompt_id": a, "version": 2, "expected_version": 1}, {"prompt_id": b, "version": 1, "expected_version": 0}]})
    release_id = team.approved(team.admin, r.json()["review_id"])["release_id"]

    for who in (team.dev, team.viewer):
        assert_error(team.web.post(f"{team.releases}/{release_id}/rollback", headers=who.h, json={"reason": "x"}),
                     403, "PERMISSION_DENIED")
    r = team.web.post(f"{team.releases}/{release_id}/rollback", headers=team.rev.h, json={"reason": "bad"})
    assert r.status_code == 202, r.text
    rid = r.json()["review_id"]
    assert [team.labels(p) for p in (a, b)] == [{"production": 2}, {"production": 1}]
    review = team.review(rid)
    assert review["kind"] == "rollback" and review["status"] == "open"
    assert [(m["prompt_id"], m["version"], m["expected_version"]) for m in review["moves"]] == [
        (a, 1, 2), (b, None, 1)]

    decided = team.approved(team.rev2, rid)
    assert decided["status"] == "applied"
    assert [team.labels(p) for p in (a, b)] == [{"production": 1}, {}]
    assert team.q(f"{team.releases}/{release_id}")["rolled_back_by"] == decided["release_id"]
    assert team.q(f"{team.releases}/{decided['release_id']}")["rollback_of"] == release_id
    assert_error(team.web.post(f"{team.releases}/{release_id}/rollback", headers=team.rev.h, json={"reason": "x"}),
                 409, "RELEASE_ROLLED_BACK")


def test_a_release_made_unprotected_is_rolled_back_through_review_once_protected(team):
    pid = team.prompt("later-protected", 2)
    team.protect([])
    r = team.web.post(team.releases, headers=team.rev.h, json={"label": "production", "moves": [
        {"prompt_id": pid, "version": 2, "expected_version": 0}]})
    assert r.status_code == 201, r.text
    team.protect(["production"])

    r2 = team.web.post(f"{team.releases}/{r.json()['release_id']}/rollback", headers=team.rev.h, json={"reason": "x"})
    assert r2.status_code == 202, r2.text
    assert team.labels(pid) == {"production": 2}


def test_developers_release_unprotected_labels_but_not_production(team):
    pid = team.prompt("dev-rel", 1)

    assert_error(team.web.post(team.releases, headers=team.dev.h, json={"label": "production", "moves": [
        {"prompt_id": pid, "version": 1, "expected_version": 0}]}), 403, "PERMISSION_DENIED")
    assert_error(team.web.post(team.releases, headers=team.viewer.h, json={"label": "staging", "moves": [
        {"prompt_id": pid, "version": 1, "expected_version": 0}]}), 403, "PERMISSION_DENIED")
    assert team.web.post(team.releases, headers=team.dev.h, json={"label": "staging", "moves": [
        {"prompt_id": pid, "version": 1, "expected_version": 0}]}).status_code == 201


def test_a_developer_cannot_request_a_release_of_another_protected_label(team):
    team.protect(["production", "eu-production"])
    pid = team.prompt("eu", 1)
    assert_error(team.request(team.dev, pid, "eu-production", 0, version=1), 403, "PERMISSION_DENIED")

    r = team.web.post(team.releases, headers=team.dev.h, json={"label": "eu-production", "moves": [
        {"prompt_id": pid, "version": 1, "expected_version": 0}]})

    assert_error(r, 403, "PERMISSION_DENIED")


def test_a_rollback_never_overwrites_a_later_change_of_split_weights(team):
    pid = team.prompt("ab-later", 2)
    r = team.web.post(team.releases, headers=team.dev.h, json={"label": "canary", "moves": [
        {"prompt_id": pid, "split": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}],
         "expected_version": 0}]})
    release_id = r.json()["release_id"]
    later = [{"version": 1, "weight": 60}, {"version": 2, "weight": 40}]
    assert team.move(team.dev, pid, "canary", split=later, expected_version=1).status_code == 200

    r = team.web.post(f"{team.releases}/{release_id}/rollback", headers=team.dev.h, json={"reason": "undo"})

    assert_error(r, 409, "RELEASE_CONFLICT")
    assert team.splits(pid) == {"canary": later}


def test_an_approval_after_the_split_was_reweighted_meanwhile_supersedes(team):
    pid = team.prompt("ab-reweighted", 3)
    team.protect([])
    assert team.move(team.owner, pid, "production", split=[{"version": 1, "weight": 90}, {"version": 2, "weight": 10}],
                     expected_version=0).status_code == 200
    team.protect(["production"])
    rid = team.requested(team.rev, pid, "production", 1, version=3)
    team.protect([])
    reweighted = [{"version": 1, "weight": 51}, {"version": 2, "weight": 49}]
    assert team.move(team.owner, pid, "production", split=reweighted, expected_version=1).status_code == 200
    team.protect(["production"])

    assert_error(team.approve(team.admin, rid), 409, "REVIEW_SUPERSEDED")
    assert team.splits(pid) == {"production": reweighted}


# ================================================================================================
# Label snapshots as of T
# ================================================================================================


def test_the_label_snapshot_as_of_before_and_after_a_release(team):
    a, b, c = team.prompt("snap-a", 3), team.prompt("snap-b", 2), team.prompt("snap-c", 1)
    assert team.move(team.dev, a, "staging", 1).status_code == 200
    assert team.move(team.dev, c, "staging", 1).status_code == 200
    before = instant()
    r = team.web.post(team.releases, headers=team.dev.h, json={"label": "staging", "moves": [
        {"prompt_id": a, "version": 3, "expected_version": 1},
        {"prompt_id": b, "split": [{"version": 1, "weight": 30}, {"version": 2, "weight": 70}],
         "expected_version": 0}]})
    assert r.status_code == 201, r.text
    after = instant()
    assert team.web.delete(team.prompt_url(c, "labels", "staging"), headers=team.dev.h).status_code == 200

    def snapshot(**params):
        body = team.q(f"/v1/orgs/{team.org}/labels/staging", **params)
        return body, [(i["prompt_id"], i["name"], i["version"], i["split"]) for i in body["items"]]

    body, items = snapshot(as_of=before)
    assert body["label"] == "staging" and body["as_of"] is not None
    assert items == [(a, "snap-a", 1, None), (c, "snap-c", 1, None)]
    _, items = snapshot(as_of=after)
    assert items == [(a, "snap-a", 3, None), (b, "snap-b", 2, [{"version": 1, "weight": 30},
                                                               {"version": 2, "weight": 70}]), (c, "snap-c", 1, None)]
    body, items = snapshot()
    assert body["as_of"] is None
    assert [i[0] for i in items] == [a, b], "removed labels are absent"
    assert snapshot(as_of="2000-01-01T00:00:00Z")[1] == []
    assert_error(team.web.q(f"/v1/orgs/{team.org}/labels/staging", team.owner, params={"as_of": "noon"}), 400,
                 "INVALID_TIMESTAMP")
    # the same for a protected label, through a reviewed release
    team.promote(a, 1, 0)
    mid = instant()
    team.promote(a, 2, 1)
    assert [i["version"] for i in team.q(f"/v1/orgs/{team.org}/labels/production", as_of=mid)["items"]] == [1]
    assert [i["version"] for i in team.q(f"/v1/orgs/{team.org}/labels/production")["items"]] == [2]


# ================================================================================================
# Traffic splits
# ================================================================================================

SPLIT = [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]


def documented_pick(org_id: str, prompt_id: str, label: str, key: str, split: list[dict]) -> int:
    """The pick documented in domain/splits.py, re-implemented independently."""
    digest = hashlib.sha256(":".join((org_id, prompt_id, label, key)).encode()).digest()
    point = struct.unpack(">Q", digest[:8])[0] % 100
    total = 0
    for entry in split:
        total += entry["weight"]
        if point < total:
            return entry["version"]
    raise AssertionError("weights sum to 100")


def test_a_split_is_moved_with_compare_and_set_and_shows_in_history_and_time_travel(team):
    pid = team.prompt("ab", 3)
    assert team.move(team.dev, pid, "canary", 1, expected_version=0).status_code == 200
    before = instant()

    r = team.move(team.dev, pid, "canary", split=SPLIT, expected_version=1)
    assert r.status_code == 200, r.text
    assert (r.json()["label"], r.json()["version"], r.json()["split"]) == ("canary", 1, SPLIT)
    during = instant()
    assert_error(team.move(team.dev, pid, "canary", split=[{"version": 2, "weight": 50}, {"version": 3, "weight": 50}],
                           expected_version=2), 409, "LABEL_CONFLICT")
    assert team.move(team.dev, pid, "canary", 3, expected_version=1).status_code == 200

    body = team.q(team.prompt_url(pid))
    assert body["labels"]["canary"] == 3 and body["splits"] == {}
    history = team.history(pid, "canary")
    assert [(h["from_version"], h["to_version"], h["split"]) for h in history] == [
        (None, 1, None), (1, 1, SPLIT), (1, 3, None)]
    then = team.q(team.prompt_url(pid), as_of=during)
    assert (then["labels"]["canary"], then["splits"]) == (1, {"canary": SPLIT})
    earlier = team.q(team.prompt_url(pid), as_of=before)
    assert (earlier["labels"]["canary"], earlier["splits"]) == (1, {})


@pytest.mark.parametrize("split,status,code", [
    ([{"version": 1, "weight": 90}, {"version": 2, "weight": 5}], 422, "INVALID_SPLIT"),
    ([{"version": 1, "weight": 90}, {"version": 2, "weight": 20}], 422, "INVALID_SPLIT"),
    ([{"version": 1, "weight": 50}, {"version": 1, "weight": 50}], 422, "INVALID_SPLIT"),
    ([{"version": 1, "weight": 100}], 422, "INVALID_SPLIT"),
    ([{"version": 1, "weight": 100}, {"version": 2, "weight": 0}], 422, None),
    ([{"version": 1, "weight": 50}, {"version": 9, "weight": 50}], 404, "VERSION_NOT_FOUND"),
    ([{"version": 1, "weight": "50"}, {"version": 2, "weight": 50}], 422, None),
])
def test_a_bad_split_is_refused(team, split, status, code):
    pid = team.prompt("bad-split", 2)

    assert_error(team.move(team.dev, pid, "canary", split=split), status, code)
    assert team.labels(pid) == {}


def test_a_split_of_a_protected_label_goes_through_review(team):
    pid = team.prompt("ab-prod", 2)
    team.promote(pid, 1, 0)

    assert_error(team.move(team.rev, pid, "production", split=SPLIT, expected_version=1), 409, "LABEL_PROTECTED")
    assert_error(team.request(team.rev, pid, "production", 1, split=[{"version": 1, "weight": 90},
                                                                      {"version": 2, "weight": 11}]),
                 422, "INVALID_SPLIT")
    rid = team.requested(team.rev, pid, "production", 1, split=SPLIT)
    (move,) = team.review(rid)["moves"]
    assert (move["version"], move["split"]) == (None, SPLIT)
    assert team.approved(team.admin, rid)["status"] == "applied"

    assert team.labels(pid) == {"production": 1}
    assert team.splits(pid) == {"production": SPLIT}
    moved = team.history(pid, "production")[-1]
    assert (moved["split"], moved["review_id"]) == (SPLIT, rid)


def test_the_by_name_fetch_picks_the_documented_version_per_key_and_says_which(team):
    pid = team.prompt("ab-fetch", 2)
    split = [{"version": 2, "weight": 50}, {"version": 1, "weight": 50}]
    assert team.move(team.dev, pid, "Canary", split=split, expected_version=0).status_code == 200
    url = f"/v1/orgs/{team.org}/prompts/by-name/ab-fetch"

    picked = Counter()
    for i in range(300):
        key = f"user-{i}"
        body = team.q(url, label="canary", split_key=key)
        expected = documented_pick(team.org, pid, "canary", key, split)
        assert (body["version"], body["split"], body["label"]) == (expected, split, "canary"), key
        assert body["template"].endswith(f"v{expected} {{{{x}}}}")
        picked[body["version"]] += 1
    assert set(picked) == {1, 2}
    assert abs(picked[1] - 150) <= 45, picked

    for key in ("user-1", "user-2", "a:b", "ü"):  # stable while the split is unchanged
        versions = {team.q(url, label="CANARY", split_key=key)["version"] for _ in range(5)}
        assert versions == {documented_pick(team.org, pid, "canary", key, split)}


def test_the_by_name_fetch_without_a_key_serves_both_versions(team):
    pid = team.prompt("ab-random", 2)
    assert team.move(team.dev, pid, "canary", split=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
                     expected_version=0).status_code == 200
    url = f"/v1/orgs/{team.org}/prompts/by-name/ab-random"

    seen = Counter(team.q(url, label="canary")["version"] for _ in range(80))

    assert set(seen) == {1, 2}, seen


def test_a_split_key_on_a_single_version_label_changes_nothing(team):
    pid = team.prompt("ab-none", 2)
    assert team.move(team.dev, pid, "canary", 2, expected_version=0).status_code == 200
    url = f"/v1/orgs/{team.org}/prompts/by-name/ab-none"

    for key in ("a", "b", "c"):
        body = team.q(url, label="canary", split_key=key)
        assert (body["version"], body["split"]) == (2, None)
    assert team.q(url, split_key="a")["version"] == 2  # latest


def test_a_reviewed_split_on_production_is_fetched_per_key(team):
    pid = team.prompt("ab-prod-fetch", 2)
    rid = team.requested(team.rev, pid, "production", 0, split=SPLIT)
    team.approved(team.admin, rid)
    url = f"/v1/orgs/{team.org}/prompts/by-name/ab-prod-fetch"
    key = team.key(team.owner, ["prompts:read"])

    for i in range(50):
        body = team.web.q(url, key, params={"label": "production", "split_key": f"s{i}"}).json()
        assert body["version"] == documented_pick(team.org, pid, "production", f"s{i}", SPLIT)
        assert body["split"] == SPLIT
