"""Event metadata (`domain.base.acting`): who caused an event and in which request.

Commands take no actor or request id; they run inside `acting(actor, request_id)` and every event of
an audited aggregate is stamped with both. Outside a context a command is a programming error (and
changes nothing); replaying stored events never needs a context.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from uuid import UUID

import pytest
from eventsourcing.domain import ProgrammingError

from application.base import BaseApp
from domain.api_key import ApiKey
from domain.base import Metadata, acting, current_metadata
from domain.organisation import Organisation
from domain.permissions import Role
from domain.prompt import Prompt, PromptNameIndex
from domain.quota import PromptQuota
from domain.session import Session
from domain.user import EmailIndex, User
from tests.unit.domain_helpers import ACTOR, REQUEST, attrs, by, given, history, replay, then

ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
OWNER = UUID("00000000-0000-4000-8000-000000000001")
DEV = UUID("00000000-0000-4000-8000-000000000003")
USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
SESSION_ID = UUID("00000000-0000-4000-8000-0000000000b1")
KEY_ID = UUID("00000000-0000-4000-8000-0000000000c1")
PROMPT_ID = UUID("00000000-0000-4000-8000-0000000000d1")


def org_events() -> list:
    with by(f"user:{OWNER}", "req-create"):
        return history(Organisation.create(ORG_ID, "Acme", OWNER))


def prompt_events() -> list:
    with by(ACTOR, "req-create"):
        return history(Prompt.create(PROMPT_ID, ORG_ID, "greeting", "Hi {{name}}", None, {}, [], "first"))


def key_events() -> list:
    with by(ACTOR, "req-issue"):
        return history(ApiKey.issue(KEY_ID, ORG_ID, "CI", "pfk_0", "hash", ["prompts:read"], issued_by=ACTOR))


def user_events() -> list:
    with by(f"user:{USER_ID}", "req-register"):
        return history(User.register(USER_ID, "alice@example.com", "h1", "Alice"))


def quota_events() -> list:
    with by(f"user:{USER_ID}", "req-create"):
        return history(PromptQuota.open(ORG_ID, "FREE"))


def session_events() -> list:
    with by(f"user:{USER_ID}", "req-login"):
        return history(Session.open(SESSION_ID, USER_ID, 0, "curl/8"))


def test_outside_acting_there_is_no_metadata():
    with pytest.raises(ProgrammingError):
        current_metadata()


# -- commands outside acting() -------------------------------------------------------------------

#: (name, events of the aggregate, command on it) for one command of every audited aggregate.
COMMANDS: list[tuple[str, Callable[[], list], Callable[[object], object]]] = [
    ("org.rename", org_events, lambda org: org.rename("Beta")),
    ("org.change_plan", org_events, lambda org: org.change_plan("PRO", prompts=0)),
    ("org.add_member", org_events, lambda org: org.add_member(DEV, "developer", Role.OWNER)),
    ("quota.count_prompt", quota_events, lambda quota: quota.count_prompt(PROMPT_ID)),
    ("quota.set_plan", quota_events, lambda quota: quota.set_plan("PRO")),
    ("org.reserve_api_key", org_events, lambda org: org.reserve_api_key(KEY_ID)),
    ("prompt.revise", prompt_events, lambda prompt: prompt.revise(1, template="Bye {{name}}")),
    ("prompt.move_label", prompt_events, lambda prompt: prompt.move_label("production", 1, None)),
    ("prompt.archive", prompt_events, lambda prompt: prompt.archive()),
    ("key.revoke", key_events, lambda key: key.revoke()),
    ("user.change_password", user_events, lambda user: user.change_password("h2")),
    ("user.revoke_all_sessions", user_events, lambda user: user.revoke_all_sessions()),
    ("session.refresh", session_events, lambda session: session.refresh(0, 0)),
    ("session.revoke", session_events, lambda session: session.revoke("logout")),
]


@pytest.mark.parametrize(("events", "command"), [(e, c) for _, e, c in COMMANDS], ids=[n for n, _, _ in COMMANDS])
def test_a_command_outside_acting_is_a_programming_error_and_emits_nothing(events, command):
    aggregate = given(events())
    state_before = dict(vars(aggregate))

    with pytest.raises(ProgrammingError):
        command(aggregate)

    assert then(aggregate) == []
    assert aggregate.version == 1
    assert vars(aggregate) == state_before, "a command without metadata must not change state"


@pytest.mark.parametrize("create", [
    lambda: Organisation.create(ORG_ID, "Acme", OWNER),
    lambda: Prompt.create(PROMPT_ID, ORG_ID, "greeting", "Hi {{name}}", None, {}, [], "first"),
    lambda: ApiKey.issue(KEY_ID, ORG_ID, "CI", "pfk_0", "hash", [], issued_by=ACTOR),
    lambda: User.register(USER_ID, "alice@example.com", "h1", "Alice"),
    lambda: Session.open(SESSION_ID, USER_ID, 0, "curl/8"),
    lambda: PromptQuota.open(ORG_ID, "FREE"),
], ids=["Organisation.create", "Prompt.create", "ApiKey.issue", "User.register", "Session.open", "PromptQuota.open"])
def test_creating_an_aggregate_outside_acting_is_a_programming_error(create):
    with pytest.raises(ProgrammingError):
        create()


def test_the_same_command_inside_acting_succeeds_after_a_refusal_outside():
    org = given(org_events())
    with pytest.raises(ProgrammingError):
        org.rename("Beta")

    with by(ACTOR, REQUEST):
        org.rename("Beta")

    assert then(org) == [("Renamed", {"name": "Beta", "actor": ACTOR, "request_id": REQUEST})]


def test_index_aggregates_carry_no_metadata_and_need_no_context():
    email = EmailIndex(email="alice@example.com", user_id=USER_ID)
    name = PromptNameIndex(org_id=ORG_ID, name="greeting", prompt_id=PROMPT_ID)

    assert then(email) == [("Created", {"email": "alice@example.com", "user_id": USER_ID})]
    assert then(name) == [("Created", {"org_id": ORG_ID, "name": "greeting", "prompt_id": PROMPT_ID})]


# -- stamping ------------------------------------------------------------------------------------


def test_acting_yields_the_metadata_it_stamps():
    with acting("user:bob", "req-9") as metadata:
        assert metadata == Metadata("user:bob", "req-9")
        assert current_metadata() == metadata


def test_request_id_defaults_to_empty():
    org = given(org_events())

    with acting("user:bob"):
        org.rename("Beta")

    assert then(org) == [("Renamed", {"name": "Beta", "actor": "user:bob", "request_id": ""})]


def test_every_event_of_one_command_block_is_stamped_with_its_metadata():
    org = given(org_events())

    with by("api_key:k1", "req-7"):
        org.add_member(DEV, "developer", Role.ADMIN)
        org.reserve_api_key(KEY_ID)

    assert [(name, event["actor"], event["request_id"]) for name, event in then(org)] == [
        ("MemberAdded", "api_key:k1", "req-7"), ("ApiKeyAdded", "api_key:k1", "req-7")]


def test_nested_acting_stamps_the_innermost_and_restores_the_outer():
    org = given(org_events())

    with by("user:outer", "req-outer"):
        org.rename("Outer 1")
        with by("user:inner", "req-inner"):
            org.rename("Inner")
        org.rename("Outer 2")

    assert then(org) == [
        ("Renamed", {"name": "Outer 1", "actor": "user:outer", "request_id": "req-outer"}),
        ("Renamed", {"name": "Inner", "actor": "user:inner", "request_id": "req-inner"}),
        ("Renamed", {"name": "Outer 2", "actor": "user:outer", "request_id": "req-outer"}),
    ]
    with pytest.raises(ProgrammingError):
        current_metadata()


def test_acting_is_left_when_the_block_raises():
    with pytest.raises(RuntimeError), by("user:bob", "req-9"):
        raise RuntimeError("boom")

    with pytest.raises(ProgrammingError):
        current_metadata()


def test_metadata_does_not_leak_between_threads():
    """Each request's commands run in their own thread; one request's actor never stamps another's."""
    orgs = {actor: given(org_events()) for actor in ("user:a", "user:b")}
    barrier = threading.Barrier(2, timeout=10)
    outside: dict[str, bool] = {}

    def run(actor: str) -> None:
        with by(actor, f"req-{actor}"):
            barrier.wait()  # both threads are inside their own block at once
            orgs[actor].rename(f"By {actor}")
            barrier.wait()

    def bare() -> None:
        try:
            current_metadata()
        except ProgrammingError:
            outside["no context"] = True

    with by("user:main", "req-main"):  # a thread does not inherit the starting thread's context
        threads = [threading.Thread(target=run, args=(a,)) for a in orgs] + [threading.Thread(target=bare)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)

    assert outside == {"no context": True}
    for actor, org in orgs.items():
        assert then(org) == [("Renamed", {"name": f"By {actor}", "actor": actor, "request_id": f"req-{actor}"})]


def test_prompt_version_author_is_the_actor_of_its_event():
    prompt = given(prompt_events())

    with by("user:bob", REQUEST):
        prompt.revise(1, template="Bye {{name}}")

    assert [v["author"] for v in prompt.versions] == [ACTOR, "user:bob"]


# -- replay --------------------------------------------------------------------------------------


def test_replay_never_needs_a_context():
    with by(f"user:{OWNER}", "req-1"):
        live = Organisation.create(ORG_ID, "Acme", OWNER)
        live.add_member(DEV, "developer", Role.OWNER)
    with by("user:bob", "req-2"):
        live.rename("Beta")
    events = history(live)
    with pytest.raises(ProgrammingError):
        current_metadata()  # what follows runs outside any context

    rebuilt = replay(events)

    assert (rebuilt.name, rebuilt.members, rebuilt.version) == (live.name, live.members, 3)
    assert [(e.actor, e.request_id) for e in events] == [
        (f"user:{OWNER}", "req-1"), (f"user:{OWNER}", "req-1"), ("user:bob", "req-2")]


def test_stored_events_load_and_replay_without_a_context():
    """Through the application's own mapper: metadata comes back from the stored state, not a context."""
    mapper = BaseApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    with by("user:bob", "req-1"):
        prompt = Prompt.create(PROMPT_ID, ORG_ID, "greeting", "Hi {{name}}", None, {}, [], "first")
        prompt.move_label("production", 1, None)
    originals = history(prompt)
    stored = [mapper.to_stored_event(e) for e in originals]

    loaded = [mapper.to_domain_event(s) for s in stored]
    rebuilt = replay(loaded)

    assert [attrs(e) for e in loaded] == [attrs(e) for e in originals]
    assert (rebuilt.labels, rebuilt.versions[0]["author"]) == ({"production": 1}, "user:bob")
