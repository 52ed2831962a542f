"""Governance in the domain (issue 10): review requests (domain/review.py) and the Organisation's
protected labels and review policies (domain/organisation.py), given / when / then.

Review requests are about *people*: `requester` and `approver` are the users answerable for a
command (for an API key, its issuer), while the event's `actor` is the credential that acted."""
from __future__ import annotations

import json
from uuid import UUID

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import Mapper, StoredEvent

from application.base import BaseApp
from domain.errors import Conflict, Forbidden, Invalid
from domain.organisation import DEFAULT_APPROVER_ROLES, DEFAULT_PROTECTED, MAX_APPROVALS, MAX_PROTECTED, Organisation
from domain.permissions import Role
from domain.review import KINDS, MAX_REASON, STATUSES, ReviewRequest
from tests.unit.domain_helpers import ACTOR, REQUEST, attrs, by, given, history, refused, replay, then

ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
REVIEW_ID = UUID("00000000-0000-4000-8000-0000000000e1")
PROMPT_ID = "00000000-0000-4000-8000-0000000000b1"
OWNER = UUID("00000000-0000-4000-8000-000000000001")

REQUESTER = "user:00000000-0000-4000-8000-000000000011"
ALICE = "user:00000000-0000-4000-8000-000000000021"
BOB = "user:00000000-0000-4000-8000-000000000022"
CAROL = "user:00000000-0000-4000-8000-000000000023"
REQUESTER_KEY = "api_key:00000000-0000-4000-8000-0000000000c1"  # a key issued by REQUESTER
ALICE_KEY = "api_key:00000000-0000-4000-8000-0000000000c2"  # a key issued by ALICE

ROLES = ["admin", "owner", "reviewer"]
MOVE = {"prompt_id": PROMPT_ID, "name": "greet", "version": 2, "split": None, "expected_version": 1,
        "from": {"version": 1, "split": None}}


def requested(approvals: int = 1, roles: list[str] | None = None, *, kind: str = "label", actor: str = REQUESTER,
              moves: list | None = None, reason: str = "kinder wording", release_id: str = "") -> list:
    with by(actor, "req-request"):
        return history(ReviewRequest.request(REVIEW_ID, ORG_ID, kind, "production", moves or [dict(MOVE)], reason,
                                             REQUESTER, approvals, ROLES if roles is None else roles,
                                             release_id=release_id))


def after(events: list, *steps) -> list:
    """`events` plus the events of `steps` ((actor, callable on the review) pairs), in order."""
    review = given(events)
    for actor, step in steps:
        with by(actor, "req-step"):
            step(review)
    return events + history(review)


def approved_by(*people: str, approvals: int = 3) -> list:
    return after(requested(approvals), *[(p, lambda r, p=p: r.approve(p, "reviewer", f"ok by {p}")) for p in people])


# -- request -------------------------------------------------------------------------------------


def test_request_emits_requested_with_the_policy_and_the_requester():
    with by(REQUESTER_KEY, REQUEST):
        review = ReviewRequest.request(REVIEW_ID, ORG_ID, "label", "production", [dict(MOVE)], "  kinder wording ",
                                       REQUESTER, 2, ["reviewer", "admin"])

    assert then(review) == [("Requested", {
        "org_id": ORG_ID, "kind": "label", "label": "production", "moves": [MOVE], "reason": "kinder wording",
        "requester": REQUESTER, "approvals_required": 2, "approver_roles": ["admin", "reviewer"], "release_id": "",
        "actor": REQUESTER_KEY, "request_id": REQUEST,
    })]
    assert review.id == REVIEW_ID
    assert (review.status, review.approvals, review.decided_by, review.comment) == ("open", [], "", "")
    assert review.requested_by == REQUESTER_KEY, "the credential that asked"
    assert review.requester == REQUESTER, "the person answerable for it"
    assert (review.approvals_required, review.approver_roles, review.label, review.kind) == (
        2, ["admin", "reviewer"], "production", "label")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_may_be_requested(kind):
    review = given(requested(kind=kind, release_id="r1" if kind == "rollback" else ""))

    assert review.kind == kind and review.status == "open"
    assert review.release_id == ("r1" if kind == "rollback" else "")


def test_a_request_of_an_unknown_kind_is_refused():
    refused(None, lambda: ReviewRequest.request(REVIEW_ID, ORG_ID, "promote", "production", [dict(MOVE)], "",
                                                REQUESTER, 1, ROLES), kind=Invalid, code="VALIDATION_ERROR")


def test_a_request_without_moves_is_refused():
    refused(None, lambda: ReviewRequest.request(REVIEW_ID, ORG_ID, "label", "production", [], "", REQUESTER, 1,
                                                ROLES), kind=Invalid, code="INVALID_MOVES")


def test_a_reason_of_exactly_the_maximum_length_is_kept():
    review = given(requested(reason="x" * MAX_REASON))

    assert review.reason == "x" * MAX_REASON


@pytest.mark.parametrize("reason", ["x" * (MAX_REASON + 1), "bell\x07", "zero\u200bwidth"],
                         ids=["too-long", "control-char", "format-char"])
def test_a_bad_reason_is_refused(reason):
    refused(None, lambda: ReviewRequest.request(REVIEW_ID, ORG_ID, "label", "production", [dict(MOVE)], reason,
                                                REQUESTER, 1, ROLES), kind=Invalid, code="INVALID_MESSAGE")


def test_the_moves_are_copied_not_shared():
    moves = [dict(MOVE)]
    with by(REQUESTER, REQUEST):
        review = ReviewRequest.request(REVIEW_ID, ORG_ID, "label", "production", moves, "", REQUESTER, 1, ROLES)
    moves[0]["version"] = 99

    assert review.moves[0]["version"] == 2


# -- approve -------------------------------------------------------------------------------------


def test_approve_emits_approved_with_the_person_and_reaches_a_quorum_of_one():
    review = given(requested(1))

    with by(ALICE_KEY, "req-approve"):
        reached = review.approve(ALICE, "admin", "  looks right ")

    assert reached is True
    assert then(review) == [("Approved", {"org_id": ORG_ID, "approver": ALICE, "comment": "looks right",
                                          "actor": ALICE_KEY, "request_id": "req-approve"})]
    assert [(a["by"], a["approver"], a["comment"]) for a in review.approvals] == [(ALICE_KEY, ALICE, "looks right")]
    assert review.approvals[0]["at"] is not None
    assert review.status == "open", "the application applies the change and records it (Applied)"


def test_a_quorum_needs_that_many_distinct_people():
    review = given(requested(3))

    with by(ALICE, "r1"):
        first = review.approve(ALICE, "reviewer", "")
    with by(BOB, "r2"):
        second = review.approve(BOB, "admin", "")
    with by(CAROL, "r3"):
        third = review.approve(CAROL, "owner", "")

    assert (first, second, third) == (False, False, True)
    assert [name for name, _ in then(review)] == ["Approved", "Approved", "Approved"]
    assert [a["approver"] for a in review.approvals] == [ALICE, BOB, CAROL]


def test_approvals_beyond_the_quorum_still_report_it_reached():
    """An approval on a request still open with the quorum met (the application applies it)."""
    review = given(approved_by(ALICE, BOB, approvals=1)[:2])  # requested + one approval, still open

    with by(BOB, "r"):
        assert review.approve(BOB, "reviewer", "") is True


def test_the_requester_cannot_approve():
    review = given(requested())

    refused(review, lambda: review.approve(REQUESTER, "owner", "mine"), kind=Forbidden, code="SELF_APPROVAL")


def test_the_requester_cannot_approve_through_a_key_they_issued():
    """With a key, the approver is its issuer: the requester again."""
    review = given(requested(actor=REQUESTER))

    with pytest.raises(Forbidden) as info, by(REQUESTER_KEY, "r"):
        review.approve(REQUESTER, "admin", "")
    assert info.value.code == "SELF_APPROVAL"
    assert then(review) == []


def test_a_request_made_with_a_key_cannot_be_approved_by_its_issuer():
    review = given(requested(actor=REQUESTER_KEY))

    refused(review, lambda: review.approve(REQUESTER, "admin", ""), kind=Forbidden, code="SELF_APPROVAL")


@pytest.mark.parametrize("role", ["developer", "viewer", "", "superuser"])
def test_a_role_outside_the_policy_cannot_approve(role):
    review = given(requested(roles=ROLES))

    refused(review, lambda: review.approve(ALICE, role, ""), kind=Forbidden, code="APPROVER_ROLE_REQUIRED",
            details={"role": role, "allowed": ROLES})


def test_the_policy_names_the_approving_roles():
    review = given(requested(roles=["owner"]))

    refused(review, lambda: review.approve(ALICE, "admin", ""), kind=Forbidden, code="APPROVER_ROLE_REQUIRED",
            details={"role": "admin", "allowed": ["owner"]})
    with by(ALICE, "r"):
        assert review.approve(ALICE, "owner", "") is True


def test_the_same_person_cannot_approve_twice():
    review = given(approved_by(ALICE, approvals=2))

    refused(review, lambda: review.approve(ALICE, "reviewer", "again"), kind=Conflict, code="ALREADY_APPROVED")


def test_the_same_person_through_another_credential_cannot_approve_twice():
    review = given(approved_by(ALICE, approvals=2))

    with pytest.raises(Conflict) as info, by(ALICE_KEY, "r"):
        review.approve(ALICE, "admin", "with my key")
    assert info.value.code == "ALREADY_APPROVED"
    assert then(review) == []
    assert len(review.approvals) == 1


def test_a_comment_too_long_is_refused():
    review = given(requested())

    refused(review, lambda: review.approve(ALICE, "reviewer", "x" * (MAX_REASON + 1)), kind=Invalid,
            code="INVALID_MESSAGE")


CLOSED = {
    "rejected": lambda r: r.reject(ALICE, "reviewer", "no"),
    "withdrawn": lambda r: r.withdraw(REQUESTER),
    "applied": lambda r: r.applied(""),
    "superseded": lambda r: r.supersede([{"prompt_id": PROMPT_ID, "code": "LABEL_CONFLICT"}]),
}


def closed(status: str) -> ReviewRequest:
    actor = REQUESTER if status == "withdrawn" else ALICE
    review = given(after(requested(), (actor, CLOSED[status])))
    assert review.status == status
    return review


@pytest.mark.parametrize("status", sorted(CLOSED))
def test_a_closed_request_cannot_be_approved(status):
    review = closed(status)

    refused(review, lambda: review.approve(BOB, "reviewer", ""), kind=Conflict, code="REVIEW_NOT_OPEN",
            details={"status": status})


@pytest.mark.parametrize("status", sorted(CLOSED))
def test_a_closed_request_cannot_be_rejected(status):
    review = closed(status)

    refused(review, lambda: review.reject(BOB, "reviewer", ""), kind=Conflict, code="REVIEW_NOT_OPEN",
            details={"status": status})


@pytest.mark.parametrize("status", sorted(CLOSED))
def test_a_closed_request_cannot_be_withdrawn(status):
    review = closed(status)

    refused(review, lambda: review.withdraw(REQUESTER), kind=Conflict, code="REVIEW_NOT_OPEN",
            details={"status": status})


@pytest.mark.parametrize("status", sorted(CLOSED))
def test_a_closed_request_cannot_be_superseded(status):
    review = closed(status)

    refused(review, lambda: review.supersede([]), kind=Conflict, code="REVIEW_NOT_OPEN", details={"status": status})


def test_a_closed_request_is_not_open_even_for_its_requester():
    """Being closed is reported before who is asking."""
    review = closed("applied")

    refused(review, lambda: review.approve(REQUESTER, "owner", ""), kind=Conflict, code="REVIEW_NOT_OPEN")


def test_every_status_is_known():
    assert set(STATUSES) == {"open", *CLOSED}


# -- reject, withdraw ----------------------------------------------------------------------------


def test_reject_emits_rejected_and_closes_the_request():
    review = given(approved_by(ALICE, approvals=2))

    with by(BOB, "req-reject"):
        review.reject(BOB, "admin", " not yet ")

    assert then(review) == [("Rejected", {"org_id": ORG_ID, "approver": BOB, "comment": "not yet", "actor": BOB,
                                          "request_id": "req-reject"})]
    assert (review.status, review.decided_by, review.comment) == ("rejected", BOB, "not yet")
    assert [a["approver"] for a in review.approvals] == [ALICE], "earlier approvals stay on record"


def test_the_requester_cannot_reject_their_own_request():
    review = given(requested())

    refused(review, lambda: review.reject(REQUESTER, "owner", ""), kind=Forbidden, code="SELF_APPROVAL")


def test_a_role_outside_the_policy_cannot_reject():
    review = given(requested(roles=["admin", "owner"]))

    refused(review, lambda: review.reject(ALICE, "reviewer", ""), kind=Forbidden, code="APPROVER_ROLE_REQUIRED",
            details={"role": "reviewer", "allowed": ["admin", "owner"]})


def test_a_person_who_approved_may_still_reject():
    review = given(approved_by(ALICE, approvals=2))

    with by(ALICE, "r"):
        review.reject(ALICE, "reviewer", "changed my mind")

    assert review.status == "rejected"


def test_the_requester_withdraws_their_request():
    review = given(requested())

    with by(REQUESTER, "req-withdraw"):
        review.withdraw(REQUESTER)

    assert then(review) == [("Withdrawn", {"org_id": ORG_ID, "actor": REQUESTER, "request_id": "req-withdraw"})]
    assert (review.status, review.decided_by) == ("withdrawn", REQUESTER)


def test_the_requester_may_withdraw_through_a_key_they_issued():
    review = given(requested())

    with by(REQUESTER_KEY, "r"):
        review.withdraw(REQUESTER)

    assert (review.status, review.decided_by) == ("withdrawn", REQUESTER_KEY)


@pytest.mark.parametrize("who", [ALICE, "", REQUESTER_KEY], ids=["someone-else", "nobody", "the-key-not-its-issuer"])
def test_only_the_requester_withdraws(who):
    review = given(requested())

    refused(review, lambda: review.withdraw(who), kind=Forbidden, code="NOT_THE_REQUESTER")


# -- applied, superseded -------------------------------------------------------------------------


def test_applied_closes_the_request_with_the_release_it_made():
    review = given(approved_by(ALICE, approvals=1))

    with by(ALICE, "req-approve"):
        review.applied("rel-1")

    assert then(review) == [("Applied", {"org_id": ORG_ID, "release_id": "rel-1", "actor": ALICE,
                                         "request_id": "req-approve"})]
    assert (review.status, review.applied_release) == ("applied", "rel-1")


def test_superseded_keeps_the_conflicts():
    conflicts = [{"prompt_id": PROMPT_ID, "name": "greet", "code": "LABEL_CONFLICT", "current_version": 3}]
    review = given(requested())

    with by(ALICE, "r"):
        review.supersede(conflicts)

    ((name, event),) = then(review)
    assert (name, event["conflicts"]) == ("Superseded", conflicts)
    assert (review.status, review.conflicts) == ("superseded", conflicts)
    conflicts[0]["current_version"] = 9
    assert review.conflicts[0]["current_version"] == 3, "copied"


def test_a_superseded_request_keeps_no_pending_approval():
    """The application supersedes a *fresh* copy: the approval that found the label moved is not kept."""
    events = requested()
    pending = given(events)
    with by(ALICE, "r"):
        assert pending.approve(ALICE, "reviewer", "") is True
    fresh = given(events)
    with by(ALICE, "r"):
        fresh.supersede([{"prompt_id": PROMPT_ID}])

    assert [n for n, _ in then(fresh)] == ["Superseded"]
    assert fresh.approvals == []


def test_replay_equals_live_state():
    events = after(requested(2), (ALICE, lambda r: r.approve(ALICE, "reviewer", "a")),
                   (BOB, lambda r: r.approve(BOB, "admin", "b")), (BOB, lambda r: r.applied("rel")))
    live = given(events)

    again = replay(events)
    assert vars(again) == vars(live)
    assert again.status == "applied" and [a["approver"] for a in again.approvals] == [ALICE, BOB]


# ================================================================================================
# Organisation: protected labels and review policies
# ================================================================================================


def org_created(plan: str = "FREE") -> list:
    with by(f"user:{OWNER}", "req-create"):
        return history(Organisation.create(ORG_ID, "Acme", OWNER, plan=plan))


def org_after(*calls) -> list:
    org = given(org_created())
    for call in calls:
        with by(f"user:{OWNER}", "req-protect"):
            call(org)
    return org_created() + history(org)


def test_a_new_organisation_protects_production_with_the_default_policy():
    org = given(org_created())

    assert org.protected_labels == DEFAULT_PROTECTED == ["production"]
    assert org.review_policies == {}
    assert org.is_protected("production") and not org.is_protected("staging")
    assert org.review_policy("production") == {"approvals": 1, "approver_roles": ["admin", "owner", "reviewer"]}
    assert org.review_policy("anything") == {"approvals": 1, "approver_roles": list(DEFAULT_APPROVER_ROLES)}


def test_the_default_approver_roles_are_those_that_may_review():
    from domain.permissions import ROLE_PERMISSIONS, Permission

    assert {Role(r) for r in DEFAULT_APPROVER_ROLES} == {
        role for role, permissions in ROLE_PERMISSIONS.items() if Permission.PROMPTS_REVIEW in permissions}


def test_a_protected_label_is_refused_with_the_route_to_request_a_review():
    org = given(org_created())

    error = refused(org, lambda: org.require_unprotected("production"), kind=Conflict, code="LABEL_PROTECTED")
    assert error.details == {"label": "production", "review_requests": f"/v1/orgs/{ORG_ID}/review-requests"}


def test_an_unprotected_label_passes():
    org = given(org_created())

    with by():
        org.require_unprotected("staging")
    assert then(org) == []


def test_protect_labels_emits_the_cleaned_sorted_set():
    org = given(org_created())

    with by(ACTOR, REQUEST):
        org.protect_labels([" Production ", "eu-production", "production", "Canary"])

    assert then(org) == [("ProtectedLabelsChanged", {
        "protected_labels": ["canary", "eu-production", "production"], "review_policies": {}, "actor": ACTOR,
        "request_id": REQUEST})]
    assert org.protected_labels == ["canary", "eu-production", "production"]
    assert org.is_protected("canary")


def test_protecting_the_same_set_emits_nothing():
    org = given(org_after(lambda o: o.protect_labels(["production", "canary"])))

    with by():
        org.protect_labels(["canary", "PRODUCTION"])
    assert then(org) == []


def test_unprotecting_everything_is_allowed():
    org = given(org_created())

    with by():
        org.protect_labels([])

    assert [n for n, _ in then(org)] == ["ProtectedLabelsChanged"]
    assert org.protected_labels == []
    with by():
        org.require_unprotected("production")


@pytest.mark.parametrize("label,code", [("latest", "LABEL_RESERVED"), ("", "INVALID_LABEL"),
                                        ("has space", "INVALID_LABEL"), ("x" * 65, "INVALID_LABEL"),
                                        ("-dash", "INVALID_LABEL")])
def test_protecting_a_bad_label_is_refused(label, code):
    org = given(org_created())

    refused(org, lambda: org.protect_labels(["production", label]), kind=Invalid, code=code)


def test_at_most_the_maximum_number_of_protected_labels():
    org = given(org_created())
    labels = [f"l{i}" for i in range(MAX_PROTECTED)]

    refused(org, lambda: org.protect_labels([*labels, "one-more"]), kind=Invalid, code="INVALID_LABEL")
    with by():
        org.protect_labels([*labels, "L0"])  # a duplicate once cleaned
    assert org.protected_labels == sorted(labels)


def test_policies_are_cleaned_and_kept_with_the_labels():
    org = given(org_created())

    with by():
        org.protect_labels(["production", "eu"], {"Production": {"approvals": 2, "approver_roles": ["owner", "admin",
                                                                                                  "owner"]}})

    ((_, event),) = then(org)
    assert event["review_policies"] == {"production": {"approvals": 2, "approver_roles": ["admin", "owner"]}}
    assert org.review_policy("production") == {"approvals": 2, "approver_roles": ["admin", "owner"]}
    assert org.review_policy("eu") == {"approvals": 1, "approver_roles": list(DEFAULT_APPROVER_ROLES)}


def test_a_policy_may_leave_out_either_field():
    org = given(org_created())

    with by():
        org.protect_labels(["a", "b"], {"a": {"approvals": 3}, "b": {"approver_roles": ["owner"]}})

    assert org.review_policies == {"a": {"approvals": 3, "approver_roles": ["admin", "owner", "reviewer"]},
                                   "b": {"approvals": 1, "approver_roles": ["owner"]}}


def test_leaving_out_the_policies_keeps_those_of_the_labels_that_stay_protected():
    org = given(org_after(lambda o: o.protect_labels(["production", "eu"], {
        "production": {"approvals": 2}, "eu": {"approvals": 3}})))

    with by():
        org.protect_labels(["production", "canary"])

    assert org.review_policies == {"production": {"approvals": 2, "approver_roles": ["admin", "owner", "reviewer"]}}
    assert org.review_policy("eu")["approvals"] == 1, "unprotected: its policy is dropped"


def test_giving_policies_replaces_them_all():
    org = given(org_after(lambda o: o.protect_labels(["production", "eu"], {"production": {"approvals": 2}})))

    with by():
        org.protect_labels(["production", "eu"], {"eu": {"approvals": 4}})

    assert org.review_policies == {"eu": {"approvals": 4, "approver_roles": ["admin", "owner", "reviewer"]}}
    assert org.review_policy("production")["approvals"] == 1


def test_the_same_policies_again_emit_nothing():
    org = given(org_after(lambda o: o.protect_labels(["production"], {"production": {"approvals": 2}})))

    with by():
        org.protect_labels(["production"], {"production": {"approvals": 2, "approver_roles": ["reviewer", "owner",
                                                                                             "admin"]}})
    assert then(org) == []


def test_a_policy_for_an_unprotected_label_is_refused():
    org = given(org_created())

    refused(org, lambda: org.protect_labels(["production"], {"staging": {"approvals": 1}, "canary": {}}),
            kind=Invalid, code="INVALID_REVIEW_POLICY", details={"labels": ["canary", "staging"]})


@pytest.mark.parametrize("policy", [
    {"approvals": 0}, {"approvals": MAX_APPROVALS + 1}, {"approvals": True}, {"approvals": "2"}, {"approvals": 1.0},
    {"approver_roles": []}, {"approver_roles": "owner"}, {"quorum": 2}, "two", None,
], ids=["zero", "too-many", "bool", "string", "float", "no-roles", "roles-not-a-list", "unknown-field", "not-a-dict",
        "null"])
def test_a_bad_policy_is_refused(policy):
    org = given(org_created())

    refused(org, lambda: org.protect_labels(["production"], {"production": policy}), kind=Invalid,
            code="INVALID_REVIEW_POLICY", details={"label": "production"})


def test_a_policy_with_an_unknown_role_is_refused():
    org = given(org_created())

    refused(org, lambda: org.protect_labels(["production"], {"production": {"approver_roles": ["owner", "boss"]}}),
            kind=Invalid, code="UNKNOWN_ROLE")


def test_the_maximum_quorum_is_allowed():
    org = given(org_created())

    with by():
        org.protect_labels(["production"], {"production": {"approvals": MAX_APPROVALS}})
    assert org.review_policy("production")["approvals"] == MAX_APPROVALS


def test_a_protected_labels_change_replays():
    events = org_after(lambda o: o.protect_labels(["production", "eu"], {"eu": {"approvals": 2}}),
                       lambda o: o.protect_labels(["eu"]))
    org = replay(events)

    assert org.protected_labels == ["eu"]
    assert org.review_policies == {"eu": {"approvals": 2, "approver_roles": ["admin", "owner", "reviewer"]}}


# -- upcasting: organisations from before governance ----------------------------------------------


def mapper() -> Mapper:
    """The application's own mapper (its transcoder decodes the stored UUIDs and datetimes)."""
    return BaseApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper


CREATED_TOPIC = "domain.organisation:Organisation.Created"
#: An Organisation.Created as code before governance stored it: no class_version, no protected_labels.
V1_CREATED = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-11-01T10:00:00.000000+00:00"},'
    b'"originator_topic":"domain.organisation:Organisation",'
    b'"name":"Acme","plan":"FREE",'
    b'"owner_id":{"_type_":"uuid_hex","_data_":"00000000000040008000000000000001"},'
    b'"request_hash":"","actor":"user:00000000-0000-4000-8000-000000000001","request_id":"req-v1"}'
)


def test_organisation_and_its_created_event_are_at_class_version_2():
    assert (Organisation.class_version, Organisation.Created.class_version) == (2, 2)


def test_upcast_created_v1_v2_protects_production():
    state = {"name": "Acme", "plan": "FREE", "owner_id": OWNER, "request_hash": "", "actor": ACTOR, "request_id": "r"}

    Organisation.Created.upcast_v1_v2(state)

    assert state == {"name": "Acme", "plan": "FREE", "owner_id": OWNER, "request_hash": "", "actor": ACTOR,
                     "request_id": "r", "protected_labels": ["production"], "review_policies": {}}


def test_upcast_never_replaces_values_that_are_there():
    state = {"protected_labels": [], "review_policies": {"x": {"approvals": 2}}}

    Organisation.Created.upcast_v1_v2(state)
    Organisation.upcast_v1_v2(state)

    assert state == {"protected_labels": [], "review_policies": {"x": {"approvals": 2}}}


def test_the_default_is_not_shared_between_upcasts():
    first, second = {}, {}
    Organisation.Created.upcast_v1_v2(first)
    first["protected_labels"].append("mutated")
    Organisation.Created.upcast_v1_v2(second)

    assert second["protected_labels"] == ["production"]
    assert DEFAULT_PROTECTED == ["production"]


def test_a_stored_version_1_created_event_loads_with_production_protected():
    stored = StoredEvent(originator_id=ORG_ID, originator_version=1, topic=CREATED_TOPIC, state=V1_CREATED)

    event = mapper().to_domain_event(stored)

    assert isinstance(event, Organisation.Created)
    assert (event.protected_labels, event.review_policies) == (["production"], {})
    org = given([event])
    assert org.protected_labels == ["production"] and org.review_policies == {}
    refused(org, lambda: org.require_unprotected("production"), kind=Conflict, code="LABEL_PROTECTED")
    assert org.members == {str(OWNER): "owner"}


def test_a_version_2_created_event_is_stored_with_its_version_and_loads_as_it_was():
    codec = mapper()
    original = org_created()[0]
    stored = codec.to_stored_event(original)
    assert b'"class_version":2' in stored.state

    loaded = codec.to_domain_event(stored)
    assert attrs(loaded) == attrs(original)


def _snapshot_of(org: Organisation) -> Snapshot:
    return Snapshot.take(org)


def test_a_snapshot_records_the_class_version():
    org = given(org_after(lambda o: o.protect_labels(["eu"])))

    snapshot = _snapshot_of(org)

    assert snapshot.state["class_version"] == 2
    assert snapshot.state["protected_labels"] == ["eu"]


def test_a_version_1_snapshot_is_upcast_via_organisation_upcast_v1_v2():
    """A snapshot taken before governance (no class_version, no governance attributes) loads with
    production protected and no policies."""
    org = given(org_created())
    state = dict(_snapshot_of(org).state)
    for key in ("class_version", "protected_labels", "review_policies"):
        state.pop(key)
    old = Snapshot(originator_id=org.id, originator_version=org.version, timestamp=org.modified_on,
                   topic="domain.organisation:Organisation", state=state)

    loaded = old.mutate(None)

    assert isinstance(loaded, Organisation)
    assert (loaded.protected_labels, loaded.review_policies) == (["production"], {})
    assert loaded.is_protected("production")
    assert (loaded.name, loaded.members, loaded.version) == ("Acme", org.members, org.version)


def test_a_version_1_snapshot_stored_and_loaded_through_the_mapper_is_upcast():
    codec = mapper()
    org = given(org_created())
    stored = codec.to_stored_event(_snapshot_of(org))
    body = json.loads(stored.state)
    inner = body["state"]
    for key in ("class_version", "protected_labels", "review_policies"):
        inner.pop(key)
    old = StoredEvent(originator_id=stored.originator_id, originator_version=stored.originator_version,
                      topic=stored.topic, state=json.dumps(body).encode())

    loaded = codec.to_domain_event(old).mutate(None)

    assert (loaded.protected_labels, loaded.review_policies) == (["production"], {})
    assert loaded.review_policy("production") == {"approvals": 1, "approver_roles": list(DEFAULT_APPROVER_ROLES)}


def test_a_version_2_snapshot_keeps_an_unprotected_organisation_unprotected():
    codec = mapper()
    org = given(org_after(lambda o: o.protect_labels([])))

    loaded = codec.to_domain_event(codec.to_stored_event(_snapshot_of(org))).mutate(None)

    assert (loaded.protected_labels, loaded.review_policies) == ([], {})


# -- the role matrix: reviewers review -----------------------------------------------------------


def _table(text: str) -> dict[str, set[str]]:
    """role -> permissions, from a markdown permission table (`| role | perm | ... |` with x marks)."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in {r.value for r in Role}:
            rows[cells[0]] = {header[i] for i, c in enumerate(cells) if i and c == "x"}
    return rows


def test_reviewers_gain_exactly_prompts_review_and_the_tables_say_so():
    from pathlib import Path

    import domain.permissions as permissions
    from domain.permissions import ROLE_PERMISSIONS, Permission

    matrix = {role.value: {p.value for p in perms} for role, perms in ROLE_PERMISSIONS.items()}
    assert {r for r, perms in matrix.items() if "prompts:review" in perms} == {"owner", "admin", "reviewer"}
    assert matrix["reviewer"] == {"prompts:read", "prompts:promote", "prompts:review", "audit:read"}
    assert matrix["developer"] == {"prompts:read", "prompts:write"}
    assert matrix["viewer"] == {"prompts:read"}
    assert matrix["owner"] == {p.value for p in Permission}
    assert matrix["admin"] == {p.value for p in Permission} - {"org:manage"}

    assert _table(permissions.__doc__) == matrix, "domain/permissions.py's table"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Roles and permissions"):]
    assert _table(section[:section.index("\n\n", section.index("| role"))]) == matrix, "README's table"
