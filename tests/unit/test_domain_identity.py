"""User, EmailIndex and Session: given events, when command, then events / error code."""
from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from application.security import hash_password, verify_password
from domain.errors import Unauthenticated
from domain.ids import email_index_id
from domain.session import Session
from domain.user import EmailIndex, User, normalise_email
from tests.unit.domain_helpers import ACTOR, REQUEST, attrs, by, given, history, refused, replay, then

PASSWORD = "correct horse battery staple"
USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
SESSION_ID = UUID("00000000-0000-4000-8000-0000000000b1")


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


def registered(password_hash: str = "argon2-hash-placeholder") -> list:
    with by(f"user:{USER_ID}", "req-register"):
        return history(User.register(USER_ID, "alice@example.com", password_hash, "Alice"))


# -- User ----------------------------------------------------------------------------------------


def test_register_emits_registered_with_email_name_and_hash(password_hash):
    with by(f"user:{USER_ID}", "req-register"):
        user = User.register(USER_ID, "alice@example.com", password_hash, "Alice")

    assert then(user) == [("Registered", {
        "email": "alice@example.com", "password_hash": password_hash, "display_name": "Alice",
        "actor": f"user:{USER_ID}", "request_id": "req-register",
    })]
    assert user.id == USER_ID
    assert user.session_epoch == 0


def test_registered_event_never_carries_the_plain_password(password_hash):
    (event,) = registered(password_hash)

    assert event.password_hash != PASSWORD
    assert event.password_hash.startswith("$argon2id$")
    assert all(PASSWORD not in str(value) for value in attrs(event).values())
    assert verify_password(event.password_hash, PASSWORD)
    assert not verify_password(event.password_hash, PASSWORD + "!")


def test_replayed_user_has_registration_state():
    user = given(registered("h1"))

    assert (user.email, user.display_name, user.password_hash, user.session_epoch) == (
        "alice@example.com", "Alice", "h1", 0)


def test_change_password_emits_password_changed_and_bumps_session_epoch():
    user = given(registered("h1"))

    with by(ACTOR, REQUEST):
        user.change_password("h2")

    assert then(user) == [("PasswordChanged", {"password_hash": "h2", "actor": ACTOR, "request_id": REQUEST})]
    assert user.password_hash == "h2"
    assert user.session_epoch == 1


def test_change_password_epoch_survives_replay():
    live = given(registered("h1"))
    with by(ACTOR, "r2"):
        live.change_password("h2")
    with by(ACTOR, "r3"):
        live.change_password("h3")

    rebuilt = given(registered("h1"), history(live))

    assert (rebuilt.password_hash, rebuilt.session_epoch) == ("h3", 2)


def test_revoke_all_sessions_emits_event_and_bumps_epoch_each_time():
    user = given(registered())

    with by(ACTOR, "r1"):
        user.revoke_all_sessions()
    with by(ACTOR, "r2"):
        user.revoke_all_sessions()

    assert then(user) == [
        ("AllSessionsRevoked", {"actor": ACTOR, "request_id": "r1"}),
        ("AllSessionsRevoked", {"actor": ACTOR, "request_id": "r2"}),
    ]
    assert user.session_epoch == 2


def test_password_change_deactivates_sessions_opened_before_it():
    user = given(registered())
    session = given(opened(epoch=user.session_epoch))
    assert session.is_active(user.session_epoch)

    with by(ACTOR, REQUEST):
        user.change_password("h2")

    assert not session.is_active(user.session_epoch)
    refused(session, lambda: session.refresh(0, user.session_epoch),
            kind=Unauthenticated, code="SESSION_REVOKED")


def test_normalise_email_trims_and_lowercases():
    assert normalise_email("  Alice@Example.COM \n") == "alice@example.com"


# -- EmailIndex ----------------------------------------------------------------------------------


def test_email_index_id_is_deterministic_per_email():
    assert email_index_id("alice@example.com") == email_index_id("alice@example.com")
    assert email_index_id("alice@example.com") != email_index_id("bob@example.com")
    assert EmailIndex.create_id("alice@example.com") == email_index_id("alice@example.com")


def test_email_index_aggregate_id_comes_from_the_email_so_a_second_claim_collides():
    first = EmailIndex(email="alice@example.com", user_id=uuid4())
    second = EmailIndex(email="alice@example.com", user_id=uuid4())
    other = EmailIndex(email="bob@example.com", user_id=uuid4())

    assert first.id == second.id == email_index_id("alice@example.com")
    assert other.id != first.id


def test_email_index_ids_collide_for_case_variants_once_normalised():
    assert email_index_id(normalise_email("Alice@Example.com")) == email_index_id(normalise_email("alice@example.com "))


def test_email_index_created_event_points_at_the_user():
    index = EmailIndex(email="alice@example.com", user_id=USER_ID)

    assert then(index) == [("Created", {"email": "alice@example.com", "user_id": USER_ID})]
    assert given(history(EmailIndex(email="alice@example.com", user_id=USER_ID))).user_id == USER_ID


# -- Session -------------------------------------------------------------------------------------


def opened(epoch: int = 0) -> list:
    with by(f"user:{USER_ID}", "req-login"):
        return history(Session.open(SESSION_ID, USER_ID, epoch, "curl/8"))


def refreshed_to(generation: int, epoch: int = 0) -> list:
    """Events of a session opened at `epoch` and refreshed up to `generation`."""
    session = given(opened(epoch))
    for g in range(generation):
        with by(ACTOR, f"req-refresh-{g}"):
            assert session.refresh(g, epoch) is True
    return opened(epoch) + history(session)


def test_open_session_emits_opened_at_generation_zero():
    with by(f"user:{USER_ID}", "req-login"):
        session = Session.open(SESSION_ID, USER_ID, 3, "curl/8")

    assert then(session) == [("Opened", {
        "user_id": USER_ID, "epoch": 3, "user_agent": "curl/8", "actor": f"user:{USER_ID}",
        "request_id": "req-login",
    })]
    assert (session.generation, session.revoked) == (0, False)
    assert session.is_active(3)
    assert not session.is_active(4)


def test_refresh_with_current_generation_rotates_to_next():
    session = given(opened())

    with by(ACTOR, REQUEST):
        assert session.refresh(0, 0) is True

    assert then(session) == [("Refreshed", {"generation": 1, "actor": ACTOR, "request_id": REQUEST})]
    assert session.generation == 1


def test_refresh_rotation_continues_from_replayed_generation():
    session = given(refreshed_to(2))
    assert session.generation == 2

    with by(ACTOR, REQUEST):
        assert session.refresh(2, 0) is True

    assert then(session) == [("Refreshed", {"generation": 3, "actor": ACTOR, "request_id": REQUEST})]


def test_refresh_with_old_generation_is_reuse_and_revokes_the_family():
    session = given(refreshed_to(2))

    with by(ACTOR, REQUEST):
        assert session.refresh(1, 0) is False

    assert then(session) == [("Revoked", {"reason": "refresh_token_reuse", "actor": ACTOR, "request_id": REQUEST})]
    assert session.revoked and session.revoked_reason == "refresh_token_reuse"


def test_after_reuse_even_the_current_generation_is_refused():
    session = given(refreshed_to(2))
    with by(ACTOR, "r-reuse"):
        assert session.refresh(0, 0) is False
    reuse_events = history(session)

    replayed = given(refreshed_to(2), reuse_events)

    refused(replayed, lambda: replayed.refresh(2, 0), kind=Unauthenticated, code="SESSION_REVOKED")


def test_refresh_with_future_generation_is_invalid_and_emits_nothing():
    session = given(refreshed_to(1))

    refused(session, lambda: session.refresh(2, 0), kind=Unauthenticated,
            code="INVALID_TOKEN")

    assert (session.generation, session.revoked) == (1, False)


def test_refresh_on_revoked_session_is_refused():
    session = given(opened())
    with by(ACTOR, "r-logout"):
        session.revoke("logout")
    revoked = given(opened(), history(session))

    refused(revoked, lambda: revoked.refresh(0, 0), kind=Unauthenticated, code="SESSION_REVOKED")


def test_refresh_with_stale_user_epoch_is_refused_without_revoking():
    session = given(opened(epoch=0))

    refused(session, lambda: session.refresh(0, 1), kind=Unauthenticated, code="SESSION_REVOKED")

    assert session.revoked is False
    assert session.generation == 0


def test_revoke_emits_revoked_with_reason():
    session = given(opened())

    with by(ACTOR, REQUEST):
        session.revoke("logout")

    assert then(session) == [("Revoked", {"reason": "logout", "actor": ACTOR, "request_id": REQUEST})]
    assert not session.is_active(0)


def test_revoke_is_idempotent():
    session = given(opened())
    with by(ACTOR, "r1"):
        session.revoke("logout")
    revoked = given(opened(), history(session))

    with by(ACTOR, "r2"):
        revoked.revoke("password_change")

    assert then(revoked) == []
    assert revoked.revoked_reason == "logout"


def test_session_replay_matches_live_state():
    session = given(opened())
    with by(ACTOR, "r1"):
        session.refresh(0, 0)
    with by(ACTOR, "r2"):
        session.refresh(1, 0)
    with by(ACTOR, "r3"):
        session.refresh(0, 0)  # reuse
    rebuilt = replay(opened() + history(session))

    assert (rebuilt.generation, rebuilt.revoked, rebuilt.revoked_reason) == (
        session.generation, session.revoked, session.revoked_reason) == (2, True, "refresh_token_reuse")
