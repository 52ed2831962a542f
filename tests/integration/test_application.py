"""Application commands on SQLite and Postgres: authorisation, tenancy, keys, idempotency, time travel."""
from datetime import datetime, timezone
import time
from uuid import uuid4

import pytest

from application import Principal
from domain.errors import Conflict, Forbidden, Invalid, LimitExceeded, NotFound, Unauthenticated


@pytest.fixture
def world(container):
    app = container.app
    users = {n: app.register_user(f"{n}@ex.com", f"{n}-correct-horse", n, "r")[0]
             for n in ("owner", "dev", "rev", "viewer", "outsider")}
    owner = Principal.user(users["owner"])
    org = app.create_organisation(owner, "Acme", "r").id
    app.update_organisation(owner, org, "r", protected_labels=[])  # moves `production` directly
    for name, role in (("dev", "developer"), ("rev", "reviewer"), ("viewer", "viewer")):
        app.add_member(owner, org, role, "r", user_id=users[name])
    other = app.create_organisation(Principal.user(users["outsider"]), "Other", "r").id
    prompt = app.create_prompt(owner, org, name="greet", template="Hi {{name}}", request_id="r").id
    foreign = app.create_prompt(Principal.user(users["outsider"]), other, name="secret", template="s", request_id="r").id
    return {"app": app, "users": users, "org": org, "other": other, "prompt": prompt, "foreign": foreign,
            "p": {n: Principal.user(u) for n, u in users.items()}}


def test_role_matrix_for_prompt_commands(world):
    app, org, prompt, p = world["app"], world["org"], world["prompt"], world["p"]
    app.revise_prompt(p["dev"], org, prompt, base_version=1, template="Hello {{name}}", request_id="r")
    with pytest.raises(Forbidden) as exc:
        app.revise_prompt(p["viewer"], org, prompt, base_version=2, template="x", request_id="r")
    assert exc.value.code == "PERMISSION_DENIED"
    with pytest.raises(Forbidden):
        app.revise_prompt(p["rev"], org, prompt, base_version=2, template="x", request_id="r")
    app.move_label(p["dev"], org, prompt, "staging", 2, "r")
    with pytest.raises(Forbidden):
        app.move_label(p["dev"], org, prompt, "production", 2, "r")
    assert app.move_label(p["rev"], org, prompt, "production", 2, "r").position is not None
    with pytest.raises(Conflict) as exc:
        app.move_label(p["rev"], org, prompt, "production", 1, "r", expected_version=1)
    assert exc.value.code == "LABEL_CONFLICT" and exc.value.details["current_version"] == 2


def test_other_tenants_things_are_not_found(world, container):
    app, org, other, p = world["app"], world["org"], world["other"], world["p"]
    with pytest.raises(NotFound):  # not a member of the other org
        app.read_prompt(p["owner"], other, world["foreign"])
    with pytest.raises(NotFound):  # foreign prompt id through one's own org
        app.read_prompt(p["owner"], org, world["foreign"])
    with pytest.raises(NotFound):
        app.revise_prompt(p["owner"], org, world["foreign"], base_version=1, template="x", request_id="r")
    with pytest.raises(NotFound):
        app.create_prompt(p["owner"], other, name="x", template="t", request_id="r")
    with pytest.raises(NotFound):
        app.read_prompt(p["owner"], uuid4(), world["prompt"])
    container.supervisor.catch_up()
    assert container.catalogue.get(org, world["foreign"]) is None
    assert [r["name"] for r in container.catalogue.list(org).items] == ["greet"]
    assert container.catalogue.versions(org, world["foreign"]) == []
    assert all(r["org_id"] == str(org) for r in container.audit.query(org)[0])


def test_api_keys_scope_permissions_and_revocation(world):
    app, org, prompt, p = world["app"], world["org"], world["prompt"], world["p"]
    issued = app.issue_api_key(p["owner"], org, "reader", ["prompts:read"], "r")
    raw = issued.data["key"]
    key = app.authenticate_api_key(raw)
    assert app.read_prompt(key, org, prompt).name == "greet"
    with pytest.raises(Forbidden):
        app.revise_prompt(key, org, prompt, base_version=1, template="x", request_id="r")
    with pytest.raises(NotFound):
        app.read_prompt(key, world["other"], world["foreign"])
    with pytest.raises(Forbidden) as exc:  # a developer cannot mint keys beyond their role
        app.issue_api_key(p["dev"], org, "k", ["prompts:read"], "r")
    assert exc.value.code == "PERMISSION_DENIED"
    app.revoke_api_key(p["owner"], org, issued.id, "r")
    with pytest.raises(Unauthenticated) as exc:
        app.authenticate_api_key(raw)
    assert exc.value.code == "API_KEY_REVOKED"
    with pytest.raises(Unauthenticated):
        app.authenticate_api_key(raw[:-2] + "xx")
    with pytest.raises(Unauthenticated):
        app.authenticate_api_key("pfk_nothex_secret")


def test_key_permissions_cannot_exceed_creator(world):
    app, org, p = world["app"], world["app"], world["p"]
    app = world["app"]
    app.change_member_role(p["owner"], world["org"], world["users"]["dev"], "admin", "r")
    with pytest.raises(Forbidden) as exc:
        app.issue_api_key(p["dev"], world["org"], "k", ["org:manage"], "r")
    assert exc.value.code == "PERMISSION_ESCALATION"
    with pytest.raises(Invalid):
        app.issue_api_key(p["owner"], world["org"], "k", ["prompts:fly"], "r")


def test_idempotent_create_replays_and_detects_reuse(world):
    app, org, p = world["app"], world["org"], world["p"]
    first = app.create_prompt(p["owner"], org, name="idem", template="t", request_id="r", idempotency_key="k1")
    again = app.create_prompt(p["owner"], org, name="idem", template="t", request_id="r", idempotency_key="k1")
    assert again.replayed and again.id == first.id and not first.replayed
    with pytest.raises(Conflict) as exc:
        app.create_prompt(p["owner"], org, name="idem2", template="t", request_id="r", idempotency_key="k1")
    assert exc.value.code == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(Conflict) as exc:
        app.create_prompt(p["owner"], org, name="IDEM", template="t", request_id="r")
    assert exc.value.code == "PROMPT_NAME_TAKEN"


def test_time_travel_folds_events_up_to_the_instant(world):
    app, org, prompt, p = world["app"], world["org"], world["prompt"], world["p"]
    app.move_label(p["owner"], org, prompt, "production", 1, "r")
    time.sleep(0.01)
    middle = datetime.now(timezone.utc)
    time.sleep(0.01)
    app.revise_prompt(p["owner"], org, prompt, base_version=1, template="Bye {{name}}", request_id="r")
    app.move_label(p["owner"], org, prompt, "production", 2, "r")
    then = app.read_prompt(p["owner"], org, prompt, as_of=middle)
    now = app.read_prompt(p["owner"], org, prompt)
    assert then.latest_version == 1 and then.labels == {"production": 1}
    assert now.latest_version == 2 and now.labels == {"production": 2}
    with pytest.raises(NotFound):
        app.read_prompt(p["owner"], org, prompt, as_of=datetime(2000, 1, 1, tzinfo=timezone.utc))


def test_members_last_owner_and_plan_limits(world):
    app, org, users, p = world["app"], world["org"], world["users"], world["p"]
    with pytest.raises(Conflict) as exc:
        app.change_member_role(p["owner"], org, users["owner"], "admin", "r")
    assert exc.value.code == "LAST_OWNER"
    app.change_member_role(p["owner"], org, users["dev"], "admin", "r")
    with pytest.raises(Forbidden) as exc:  # admins cannot grant owner
        app.change_member_role(p["dev"], org, users["rev"], "owner", "r")
    assert exc.value.code == "OWNER_ROLE_REQUIRED"
    with pytest.raises(Forbidden):  # admins cannot change the plan
        app.update_organisation(p["dev"], org, "r", plan="PRO")
    extra = [app.register_user(f"x{i}@ex.com", "correct horse battery", "x", "r")[0] for i in range(2)]
    app.add_member(p["owner"], org, "viewer", "r", email="x0@ex.com")  # 5th member: FREE allows 5
    with pytest.raises(LimitExceeded):
        app.add_member(p["owner"], org, "viewer", "r", user_id=extra[1])
    app.update_organisation(p["owner"], org, "r", plan="PRO")
    app.add_member(p["owner"], org, "viewer", "r", user_id=extra[1])
    with pytest.raises(NotFound):
        app.add_member(p["owner"], org, "viewer", "r", email="nobody@ex.com")


def test_sessions_refresh_rotation_and_reuse(world):
    app = world["app"]
    grant = app.login("owner@ex.com", "owner-correct-horse", "pytest", "r")
    second = app.refresh_session(grant.session_id, 0, grant.user_id, "r")
    assert second.generation == 1
    with pytest.raises(Unauthenticated) as exc:
        app.refresh_session(grant.session_id, 0, grant.user_id, "r")  # reuse of generation 0
    assert exc.value.code == "REFRESH_TOKEN_REUSED"
    with pytest.raises(Unauthenticated):
        app.refresh_session(grant.session_id, 1, grant.user_id, "r")  # the whole family is revoked
    with pytest.raises(Unauthenticated):
        app.check_session(grant.session_id, grant.user_id)
    with pytest.raises(Unauthenticated) as exc:
        app.login("owner@ex.com", "wrong-password-123", "pytest", "r")
    assert exc.value.code == "INVALID_CREDENTIALS"
    other = app.login("owner@ex.com", "owner-correct-horse", "pytest", "r")
    # A refresh naming another user is refused BEFORE anything is saved: no rotation, no revocation.
    head = app.head_position()
    with pytest.raises(Unauthenticated) as exc:
        app.refresh_session(other.session_id, 0, uuid4(), "r")
    assert exc.value.code == "INVALID_TOKEN" and app.head_position() == head
    assert app.refresh_session(other.session_id, 0, other.user_id, "r").generation == 1  # still generation 0
    app.logout_all(other.user_id, "r")
    with pytest.raises(Unauthenticated):
        app.check_session(other.session_id, other.user_id)


def test_create_prompt_refuses_in_the_order_it_always_did(world):
    """create_prompt builds the prompt and looks up its name and key before taking the
    organisation's lock (adr/0022); what is refused is still decided after the grant, in order."""
    app, org, other, p = world["app"], world["org"], world["other"], world["p"]
    with pytest.raises(NotFound):  # outside the tenancy: 404, whatever the body
        app.create_prompt(p["owner"], other, name="greet", template="", request_id="r")
    with pytest.raises(Forbidden):  # no prompts:write: 403 before the content and the name
        app.create_prompt(p["viewer"], org, name="greet", template="", request_id="r")
    with pytest.raises(Forbidden):
        app.create_prompt(p["viewer"], org, name="greet", template="Hi", request_id="r")
    with pytest.raises(Invalid):  # the content before the name
        app.create_prompt(p["dev"], org, name="greet", template="", request_id="r")
    with pytest.raises(Conflict) as exc:
        app.create_prompt(p["dev"], org, name="GREET", template="Hi", request_id="r")
    assert exc.value.code == "PROMPT_NAME_TAKEN"
    first = app.create_prompt(p["dev"], org, name="keyed", template="Hi", request_id="r", idempotency_key="k1")
    with pytest.raises(Forbidden):  # the grant first, with a key too
        app.create_prompt(p["viewer"], org, name="keyed", template="Hi", request_id="r", idempotency_key="k1")
    again = app.create_prompt(p["dev"], org, name="keyed", template="Hi", request_id="r", idempotency_key="k1")
    assert again.replayed and again.id == first.id


def test_commit_listeners_are_told_after_the_command_and_its_lock(world):
    """A listener (a projection wake-up, a Redis nudge) runs after the commit and after the
    command released its locks (the organisation's, the prompt quota's): another thread can take
    them from inside it."""
    import threading

    app, org, p = world["app"], world["org"], world["p"]
    told = []

    def listener(position: int) -> None:
        got = threading.Event()

        def take() -> None:
            with app.command_locks.hold(f"org_id:{org}"), app.quota_lock(org):
                got.set()

        t = threading.Thread(target=take)
        t.start()
        t.join(2)
        told.append((position, got.is_set(), app.head_position()))

    app.add_commit_listener(listener)
    result = app.create_prompt(p["dev"], org, name="told", template="Hi", request_id="r")
    app.issue_api_key(p["owner"], org, "k", ["prompts:read"], "r")
    assert told[0] == (result.position, True, result.position)
    assert len(told) == 2 and all(free for _, free, _ in told)
