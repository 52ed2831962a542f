"""ApiKey: issue and revoke, and loading keys stored before the issuer was recorded."""
from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

from application.base import BaseApp
from domain.api_key import ApiKey
from domain.errors import Conflict, Invalid
from tests.unit.domain_helpers import ACTOR, REQUEST, attrs, by, given, history, refused, then

KEY_ID = UUID("00000000-0000-4000-8000-0000000000c1")
ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
SECRET_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def issued() -> list:
    with by(ACTOR, "req-issue"):
        return history(ApiKey.issue(KEY_ID, ORG_ID, "CI", "pfk_00000000", SECRET_HASH, ["prompts:read"],
                                    issued_by=ACTOR))


def test_issue_emits_issued_with_sorted_deduplicated_permissions():
    with by(ACTOR, REQUEST):
        key = ApiKey.issue(KEY_ID, ORG_ID, "  CI deploy ", "pfk_00000000", SECRET_HASH,
                           ["prompts:write", "prompts:read", "prompts:write"], issued_by=ACTOR, request_hash="fp")

    assert then(key) == [("Issued", {
        "org_id": ORG_ID, "name": "CI deploy", "prefix": "pfk_00000000", "secret_hash": SECRET_HASH,
        "permissions": ["prompts:read", "prompts:write"], "issued_by": ACTOR, "actor": ACTOR, "request_id": REQUEST,
        "request_hash": "fp",
    })]
    assert key.id == KEY_ID
    assert key.permissions == ["prompts:read", "prompts:write"]
    assert key.issued_by == ACTOR
    assert key.revoked is False


def test_issued_by_is_recorded_as_given_not_taken_from_the_actor():
    """The issuer is a decision of the command (whose permissions bound the key), the actor is metadata."""
    with by("user:someone-else", REQUEST):
        key = ApiKey.issue(KEY_ID, ORG_ID, "CI", "pfk_0", SECRET_HASH, ["prompts:read"], issued_by=ACTOR)

    ((_, event),) = then(key)
    assert (event["issued_by"], event["actor"]) == (ACTOR, "user:someone-else")
    assert key.issued_by == ACTOR


def test_issued_key_replays():
    key = given(issued())

    assert (key.org_id, key.name, key.prefix, key.secret_hash, key.permissions, key.issued_by, key.revoked) == (
        ORG_ID, "CI", "pfk_00000000", SECRET_HASH, ["prompts:read"], ACTOR, False)


def test_issue_with_invalid_name_is_refused():
    for name in ["", "x" * 101, "a/b", "tab\x01", "tab\there", "new\nline", "cr\rhere"]:
        refused(None, lambda: ApiKey.issue(KEY_ID, ORG_ID, name, "pfk_0", SECRET_HASH, [], issued_by=ACTOR),
                kind=Invalid, code="INVALID_NAME")


def test_revoke_emits_revoked_with_org_id():
    key = given(issued())

    with by(ACTOR, REQUEST):
        key.revoke()

    assert then(key) == [("Revoked", {"org_id": ORG_ID, "actor": ACTOR, "request_id": REQUEST})]
    assert key.revoked is True


def test_revoking_a_revoked_key_is_refused():
    key = given(issued())
    with by(ACTOR, "r1"):
        key.revoke()
    key = given(issued(), history(key))
    assert key.revoked is True

    refused(key, lambda: key.revoke(), kind=Conflict, code="API_KEY_REVOKED")


# -- ApiKey.Issued version 1 -> 2: the issuer -----------------------------------------------------

ISSUED_TOPIC = "domain.api_key:ApiKey.Issued"
#: The state of an Issued event exactly as code before issue 8 stored it (tests/fixtures/legacy_v1):
#: no `class_version` (version 1) and no `issued_by`.
V1_STATE = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-01T14:20:16.155025+00:00"},'
    b'"originator_topic":"domain.api_key:ApiKey",'
    b'"org_id":{"_type_":"uuid_hex","_data_":"0000000000004000800000000000000a"},'
    b'"name":"ops","prefix":"pfk_00000000","secret_hash":"' + SECRET_HASH.encode() + b'",'
    b'"permissions":["api_keys:manage","prompts:read"],'
    b'"actor":"__ACTOR__","request_id":"req-v1","request_hash":"fp"}'
)


def mapper() -> Mapper:
    """The application's own mapper (its transcoder decodes the stored UUIDs and datetimes)."""
    return BaseApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper


def stored_v1(actor: str) -> StoredEvent:
    return StoredEvent(originator_id=KEY_ID, originator_version=1, topic=ISSUED_TOPIC,
                       state=V1_STATE.replace(b"__ACTOR__", actor.encode()))


def test_issued_is_at_class_version_2():
    assert ApiKey.Issued.class_version == 2


def test_upcast_v1_v2_names_the_actor_as_the_issuer():
    state = {"org_id": ORG_ID, "name": "ops", "permissions": ["prompts:read"], "actor": ACTOR, "request_id": "r"}

    ApiKey.Issued.upcast_v1_v2(state)

    assert state["issued_by"] == ACTOR
    assert state["actor"] == ACTOR, "the actor itself is kept"


def test_a_stored_version_1_issued_event_loads_with_issued_by_equal_to_its_actor():
    event = mapper().to_domain_event(stored_v1(ACTOR))

    assert isinstance(event, ApiKey.Issued)
    assert attrs(event) == {
        "org_id": ORG_ID, "name": "ops", "prefix": "pfk_00000000", "secret_hash": SECRET_HASH,
        "permissions": ["api_keys:manage", "prompts:read"], "actor": ACTOR, "request_id": "req-v1",
        "request_hash": "fp", "issued_by": ACTOR,
    }
    key = given([event])
    assert (key.issued_by, key.org_id, key.permissions, key.revoked) == (
        ACTOR, ORG_ID, ["api_keys:manage", "prompts:read"], False)


def test_a_legacy_key_minted_by_a_key_is_issued_by_that_key():
    parent = "api_key:00000000-0000-4000-8000-0000000000c0"

    key = given([mapper().to_domain_event(stored_v1(parent))])

    assert key.issued_by == parent


def test_a_version_2_event_keeps_its_own_issuer():
    """The upcaster runs only for version-1 state: a stored v2 issuer is never replaced by the actor."""
    codec = mapper()
    with by("user:someone-else", REQUEST):
        original = history(ApiKey.issue(KEY_ID, ORG_ID, "CI", "pfk_0", SECRET_HASH, ["prompts:read"],
                                        issued_by=ACTOR))
    stored = codec.to_stored_event(original[0])
    assert b'"class_version":2' in stored.state

    loaded = codec.to_domain_event(stored)

    assert (loaded.issued_by, loaded.actor) == (ACTOR, "user:someone-else")
    assert attrs(loaded) == attrs(original[0])
