"""Governance under concurrency (issue 10), at the application level, on SQLite and Postgres.

Twenty threads race (released together by a barrier): approvers of the same review request,
requesters/approvers of competing requests for the same protected label, and direct moves of an
unprotected label. Every race has exactly one outcome: no lost and no double move (counted in the
prompt's event stream), the label ends where the winning request pointed it, and every other racer
gets a clean 409 (REVIEW_NOT_OPEN, REVIEW_SUPERSEDED, LABEL_CONFLICT; RELEASE_CONFLICT for racing
releases) or succeeds idempotently, never an unexpected exception."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from argon2 import PasswordHasher

from application import Principal
from domain.errors import Conflict
from domain.prompt import Prompt
from domain.review import ReviewRequest

THREADS = 20
CLEAN = {"REVIEW_NOT_OPEN", "REVIEW_SUPERSEDED", "LABEL_CONFLICT", "RELEASE_CONFLICT"}


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch):
    """Argon2id with the cheapest parameters: two dozen registrations, hashing is not under test."""
    import application.security as security

    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class World:
    app: Any
    org: UUID
    owner: Principal
    reviewers: list[Principal]

    def prompt(self, name: str, versions: int) -> UUID:
        pid = self.app.create_prompt(self.owner, self.org, name=name, template="v1", request_id="setup").id
        for n in range(2, versions + 1):
            self.app.revise_prompt(self.owner, self.org, pid, base_version=n - 1, template=f"v{n}", request_id="setup")
        return pid

    def promote(self, pid: UUID, version: int, expected: int, label: str = "production") -> None:
        review = self.app.request_review(self.reviewers[0], self.org, prompt_id=pid, label=label, version=version,
                                         expected_version=expected, request_id="setup")
        assert self.app.approve_review(self.owner, self.org, review.id, "", "setup").data["status"] == "applied"

    def label(self, pid: UUID, label: str) -> int | None:
        return self.app.read_prompt(self.owner, self.org, pid).labels.get(label)

    def moves(self, pid: UUID, label: str) -> list[Prompt.LabelMoved]:
        """The LabelMoved events of `label` in the prompt's stream (the event store, not a read model)."""
        return [e for e in self.app.events.get(pid) if isinstance(e, Prompt.LabelMoved) and e.label == label]

    def review(self, review_id: UUID) -> ReviewRequest:
        return self.app.repository.get(review_id)


@pytest.fixture
def world(container) -> World:
    app = container.app
    owner_id, _ = app.register_user("owner@race.example", "correct horse battery", "Owner", "setup")
    owner = Principal.user(owner_id)
    org = app.create_organisation(owner, "Race", "setup").id
    app.update_organisation(owner, org, "setup", plan="PRO")
    reviewers = []
    for i in range(THREADS + 2):
        user_id, _ = app.register_user(f"rev{i}@race.example", "correct horse battery", f"Rev {i}", "setup")
        app.add_member(owner, org, "reviewer", "setup", user_id=user_id)
        reviewers.append(Principal.user(user_id))
    assert app.get_organisation(owner, org).protected_labels == ["production"]
    return World(app, org, owner, reviewers)


def race(calls: list[Callable[[], Any]]) -> list[tuple[str, Any]]:
    """Run every call on its own thread, all released at once. ("ok", result) or ("conflict", code);
    any other exception fails the test with its type and message."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[tuple[str, Any] | None] = [None] * len(calls)
    unexpected: list[str] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = ("ok", calls[index]())
        except Conflict as exc:
            if exc.code not in CLEAN:
                unexpected.append(f"thread {index}: Conflict {exc.code}: {exc.message}")
            outcomes[index] = ("conflict", exc.code)
        except BaseException as exc:  # noqa: BLE001 - reported below
            unexpected.append(f"thread {index}: {type(exc).__name__}: {exc}")
            outcomes[index] = ("error", exc)

    with ThreadPoolExecutor(len(calls)) as pool:
        list(pool.map(run, range(len(calls))))
    assert not unexpected, unexpected
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


# -- approvers racing on one request -------------------------------------------------------------


@pytest.mark.parametrize("quorum", [1, 3])
def test_approvers_racing_on_one_request_apply_it_exactly_once(world, quorum):
    app, org = world.app, world.org
    pid = world.prompt("one-request", 3)
    world.promote(pid, 1, 0)
    if quorum > 1:
        app.update_organisation(world.owner, org, "setup", review_policies={"production": {"approvals": quorum}})
    requester, approvers = world.reviewers[0], world.reviewers[1:THREADS + 1]
    review_id = app.request_review(requester, org, prompt_id=pid, label="production", version=3, expected_version=1,
                                   request_id="req").id

    outcomes = race([lambda p=p: app.approve_review(p, org, review_id, "lgtm", "approve") for p in approvers])

    statuses = Counter(r.data["status"] for kind, r in outcomes if kind == "ok")
    assert statuses == Counter({"applied": 1, "open": quorum - 1}), outcomes
    assert Counter(code for kind, code in outcomes if kind == "conflict") == Counter(
        {"REVIEW_NOT_OPEN": THREADS - quorum})
    moves = world.moves(pid, "production")
    assert [(m.from_version, m.to_version) for m in moves] == [(None, 1), (1, 3)], "exactly one move, none lost"
    assert world.label(pid, "production") == 3
    review = world.review(review_id)
    assert review.status == "applied"
    assert len(review.approvals) == quorum and len({a["approver"] for a in review.approvals}) == quorum
    winner = [r for kind, r in outcomes if kind == "ok" and r.data["status"] == "applied"][0]
    assert moves[-1].review_id == str(review_id)
    assert moves[-1].approved_by == [a["approver"] for a in review.approvals]
    assert moves[-1].requested_by == requester.actor
    # the approval that reached the quorum and the move are one save: consecutive in the log
    saved = app.recorder.select_notifications(winner.position - 2, 3)
    assert [(n.id, n.originator_id, n.topic.rpartition(".")[2]) for n in saved] == [
        (winner.position - 2, review_id, "Approved"), (winner.position - 1, review_id, "Applied"),
        (winner.position, pid, "LabelMoved")]


# -- competing requests for the same label -------------------------------------------------------


def test_precreated_competing_requests_approved_at_once_apply_exactly_one(world):
    app, org = world.app, world.org
    pid = world.prompt("competing", 6)
    world.promote(pid, 1, 0)
    before = len(world.moves(pid, "production"))
    requesters = world.reviewers[:THREADS]
    reviews = {}
    for i, who in enumerate(requesters):
        target = 2 + i % 5
        reviews[app.request_review(who, org, prompt_id=pid, label="production", version=target, expected_version=1,
                                   request_id=f"req-{i}").id] = target
    ids = list(reviews)

    outcomes = race([lambda i=i: app.approve_review(world.reviewers[(i + 1) % THREADS], org, ids[i], "", f"a{i}")
                     for i in range(THREADS)])

    winners = [ids[i] for i, (kind, _) in enumerate(outcomes) if kind == "ok"]
    assert len(winners) == 1, outcomes
    assert [o for o in outcomes if o[0] == "ok"][0][1].data["status"] == "applied"
    assert Counter(code for kind, code in outcomes if kind == "conflict") == Counter(
        {"REVIEW_SUPERSEDED": THREADS - 1})
    moves = world.moves(pid, "production")
    assert len(moves) == before + 1
    assert world.label(pid, "production") == reviews[winners[0]] == moves[-1].to_version
    assert moves[-1].review_id == str(winners[0])
    assert Counter(world.review(r).status for r in ids) == Counter({"applied": 1, "superseded": THREADS - 1})


def test_racers_requesting_and_approving_competing_changes_apply_exactly_one(world):
    app, org = world.app, world.org
    pid = world.prompt("request-and-approve", 6)
    world.promote(pid, 1, 0)
    before = len(world.moves(pid, "production"))
    created: dict[UUID, int] = {}
    lock = threading.Lock()

    def request_then_approve(i: int):
        target = 2 + i % 5
        review_id = app.request_review(world.reviewers[i], org, prompt_id=pid, label="production", version=target,
                                       expected_version=1, request_id=f"req-{i}").id
        with lock:
            created[review_id] = target
        return review_id, app.approve_review(world.reviewers[(i + 1) % THREADS], org, review_id, "", f"a{i}")

    outcomes = race([lambda i=i: request_then_approve(i) for i in range(THREADS)])

    applied = [r for kind, r in outcomes if kind == "ok"]
    assert len(applied) == 1, outcomes
    winner, result = applied[0]
    assert result.data["status"] == "applied"
    codes = Counter(code for kind, code in outcomes if kind == "conflict")
    assert set(codes) <= {"REVIEW_SUPERSEDED", "LABEL_CONFLICT"} and sum(codes.values()) == THREADS - 1
    moves = world.moves(pid, "production")
    assert len(moves) == before + 1
    assert world.label(pid, "production") == created[winner] == moves[-1].to_version
    statuses = Counter(world.review(r).status for r in created)
    assert statuses == Counter({"applied": 1, "superseded": len(created) - 1})
    assert codes["REVIEW_SUPERSEDED"] == len(created) - 1 and codes["LABEL_CONFLICT"] == THREADS - len(created)


# -- direct moves of an unprotected label --------------------------------------------------------


def _unprotected_staging(world: World, pid: UUID) -> None:
    app, org = world.app, world.org
    app.move_label(world.owner, org, pid, "staging", 1, "setup", expected_version=0)
    app.update_organisation(world.owner, org, "setup", protected_labels=["production", "staging"])
    app.update_organisation(world.owner, org, "setup", protected_labels=["production"])
    assert app.get_organisation(world.owner, org).protected_labels == ["production"]


def test_direct_moves_racing_with_compare_and_set_have_one_winner(world):
    app, org = world.app, world.org
    pid = world.prompt("direct", 5)
    _unprotected_staging(world, pid)

    targets = [2 + i % 4 for i in range(THREADS)]
    outcomes = race([lambda t=t: app.move_label(world.owner, org, pid, "staging", t, "m", expected_version=1)
                     for t in targets])

    won = [i for i, (kind, _) in enumerate(outcomes) if kind == "ok"]
    assert len(won) == 1, outcomes
    assert Counter(code for kind, code in outcomes if kind == "conflict") == Counter({"LABEL_CONFLICT": THREADS - 1})
    moves = world.moves(pid, "staging")
    assert [(m.from_version, m.to_version) for m in moves] == [(None, 1), (1, targets[won[0]])]
    assert world.label(pid, "staging") == targets[won[0]]


def test_direct_moves_to_the_same_version_move_once_and_the_rest_succeed_idempotently(world):
    app, org = world.app, world.org
    pid = world.prompt("same-target", 3)
    _unprotected_staging(world, pid)

    calls = [(lambda: app.move_label(world.owner, org, pid, "staging", 2, "m", expected_version=1)) if i % 2 else
             (lambda: app.move_label(world.owner, org, pid, "staging", 2, "m")) for i in range(THREADS)]
    outcomes = race(calls)

    unconditional = [outcomes[i] for i in range(0, THREADS, 2)]
    assert all(kind == "ok" for kind, _ in unconditional), unconditional
    assert all(r.version == 2 for kind, r in outcomes if kind == "ok")
    assert {code for kind, code in outcomes if kind == "conflict"} <= {"LABEL_CONFLICT"}
    assert [(m.from_version, m.to_version) for m in world.moves(pid, "staging")] == [(None, 1), (1, 2)]
    assert sum(1 for kind, r in outcomes if kind == "ok" and r.position is not None) == 1, "one save moved it"


def test_the_protected_label_stays_refused_while_racing(world):
    app, org = world.app, world.org
    pid = world.prompt("refused", 2)
    world.promote(pid, 1, 0)

    def direct():
        try:
            app.move_label(world.owner, org, pid, "production", 2, "m", expected_version=1)
        except Conflict as exc:
            return exc.code
        return "moved"

    with ThreadPoolExecutor(THREADS) as pool:
        codes = list(pool.map(lambda _: direct(), range(THREADS)))
    assert codes == ["LABEL_PROTECTED"] * THREADS
    assert [(m.from_version, m.to_version) for m in world.moves(pid, "production")] == [(None, 1)]


# -- everything at once --------------------------------------------------------------------------


def test_all_three_races_at_once(world):
    app, org, rv = world.app, world.org, world.reviewers
    one, competing, direct = world.prompt("mix-one", 3), world.prompt("mix-competing", 6), world.prompt("mix-direct", 5)
    world.promote(one, 1, 0)
    world.promote(competing, 1, 0)
    _unprotected_staging(world, direct)
    shared = app.request_review(rv[THREADS], org, prompt_id=one, label="production", version=2, expected_version=1,
                                request_id="shared").id
    created: dict[UUID, int] = {}
    lock = threading.Lock()

    def compete(i: int):
        target = 2 + i % 5
        review_id = app.request_review(rv[i], org, prompt_id=competing, label="production", version=target,
                                       expected_version=1, request_id=f"c{i}").id
        with lock:
            created[review_id] = target
        return ("compete", review_id, app.approve_review(rv[(i + 1) % THREADS], org, review_id, "", f"ca{i}"))

    calls: list[Callable[[], Any]] = []
    for i in range(7):
        calls.append(lambda i=i: ("shared", shared, app.approve_review(rv[i], org, shared, "", f"s{i}")))
    for i in range(7, 14):
        calls.append(lambda i=i: compete(i))
    direct_targets = {}
    for i in range(14, THREADS):
        direct_targets[len(calls)] = 2 + i % 4
        calls.append(lambda t=2 + i % 4: ("direct", None, app.move_label(world.owner, org, direct, "staging", t, "d",
                                                                          expected_version=1)))
    outcomes = race(calls)

    kinds = Counter(r[0] for kind, r in outcomes if kind == "ok")
    assert kinds == Counter({"shared": 1, "compete": 1, "direct": 1}), outcomes
    assert Counter(outcomes[i][1] for i in range(7) if outcomes[i][0] == "conflict") == Counter({"REVIEW_NOT_OPEN": 6})
    assert {outcomes[i][1] for i in range(7, 14) if outcomes[i][0] == "conflict"} <= {"REVIEW_SUPERSEDED",
                                                                                       "LABEL_CONFLICT"}
    assert Counter(outcomes[i][1] for i in direct_targets if outcomes[i][0] == "conflict") == Counter(
        {"LABEL_CONFLICT": len(direct_targets) - 1})

    assert [(m.from_version, m.to_version) for m in world.moves(one, "production")] == [(None, 1), (1, 2)]
    assert world.review(shared).status == "applied"
    (winner,) = [r[1] for kind, r in outcomes if kind == "ok" and r[0] == "compete"]
    assert [m.to_version for m in world.moves(competing, "production")] == [1, created[winner]]
    assert world.label(competing, "production") == created[winner]
    assert Counter(world.review(r).status for r in created) == Counter({"applied": 1, "superseded": len(created) - 1})
    (direct_won,) = [i for i in direct_targets if outcomes[i][0] == "ok"]
    assert [m.to_version for m in world.moves(direct, "staging")] == [1, direct_targets[direct_won]]
    assert world.label(direct, "staging") == direct_targets[direct_won]


# -- releases racing -----------------------------------------------------------------------------


def test_racing_releases_of_the_same_prompts_apply_exactly_one_whole(world):
    """All or none under contention: one release moves every prompt, the others move none."""
    app, org = world.app, world.org
    prompts = [world.prompt(f"rel-{n}", 5) for n in range(3)]
    for pid in prompts:
        app.move_label(world.owner, org, pid, "staging", 1, "setup", expected_version=0)

    def release(i: int):
        target = 2 + i % 4
        moves = [{"prompt_id": str(pid), "version": target, "expected_version": 1} for pid in prompts]
        return target, app.create_release(world.owner, org, label="staging", moves=moves, request_id=f"rel-{i}")

    outcomes = race([lambda i=i: release(i) for i in range(THREADS)])

    won = [r for kind, r in outcomes if kind == "ok"]
    assert len(won) == 1, outcomes
    target, result = won[0]
    assert Counter(code for kind, code in outcomes if kind == "conflict") == Counter({"RELEASE_CONFLICT": THREADS - 1})
    for pid in prompts:
        assert [(m.from_version, m.to_version) for m in world.moves(pid, "staging")] == [(None, 1), (1, target)]
    recorded = app.repository.get(UUID(result.data["release_id"]))
    assert [m["to"]["version"] for m in recorded.moves] == [target] * 3


# -- protecting a label while a direct move is in flight -----------------------------------------


def test_protection_applies_to_moves_authorised_after_it_commits(world, monkeypatch):
    """Deterministic interleaving: the owner protects `staging` after a direct move was authorised
    and before its save. The move was checked against the organisation as it was, so it lands (the
    move is serialised before the protection: adr/0014 explains why no org-wide lock guards label
    moves); the next direct move is refused."""
    app, org = world.app, world.org
    pid = world.prompt("toctou", 2)
    load_prompt = app._prompt_to_change  # where a command gets the prompt it changes (adr/0026)
    protected = []

    def protect_then_load(org_id, prompt_id):
        if not protected:
            protected.append(app.update_organisation(world.owner, org, "protect", protected_labels=["production",
                                                                                                   "staging"]))
        return load_prompt(org_id, prompt_id)

    monkeypatch.setattr(app, "_prompt_to_change", protect_then_load)
    app.move_label(world.owner, org, pid, "staging", 2, "move", expected_version=0)
    monkeypatch.undo()
    assert protected and world.label(pid, "staging") == 2
    with pytest.raises(Conflict) as info:
        app.move_label(world.owner, org, pid, "staging", 1, "move", expected_version=2)
    assert info.value.code == "LABEL_PROTECTED"
    assert world.label(pid, "staging") == 2
