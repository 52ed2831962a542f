"""ApiKey: issue and revoke."""
from __future__ import annotations

from uuid import UUID

from domain.api_key import ApiKey
from domain.errors import Conflict, Invalid
from tests.unit.domain_helpers import ACTOR, REQUEST, given, history, refused, then

KEY_ID = UUID("00000000-0000-4000-8000-0000000000c1")
ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
SECRET_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def issued() -> list:
    return history(ApiKey.issue(KEY_ID, ORG_ID, "CI", "pfk_00000000", SECRET_HASH, ["prompts:read"], ACTOR, "req-issue"))


def test_issue_emits_issued_with_sorted_deduplicated_permissions():
    key = ApiKey.issue(KEY_ID, ORG_ID, "  CI deploy ", "pfk_00000000", SECRET_HASH,
                       ["prompts:write", "prompts:read", "prompts:write"], ACTOR, REQUEST, request_hash="fp")

    assert then(key) == [("Issued", {
        "org_id": ORG_ID, "name": "CI deploy", "prefix": "pfk_00000000", "secret_hash": SECRET_HASH,
        "permissions": ["prompts:read", "prompts:write"], "actor": ACTOR, "request_id": REQUEST,
        "request_hash": "fp",
    })]
    assert key.id == KEY_ID
    assert key.permissions == ["prompts:read", "prompts:write"]
    assert key.revoked is False


def test_issued_key_replays():
    key = given(issued())

    assert (key.org_id, key.name, key.prefix, key.secret_hash, key.permissions, key.revoked) == (
        ORG_ID, "CI", "pfk_00000000", SECRET_HASH, ["prompts:read"], False)


def test_issue_with_invalid_name_is_refused():
    for name in ["", "x" * 101, "a/b", "tab\x01"]:
        refused(None, lambda: ApiKey.issue(KEY_ID, ORG_ID, name, "pfk_0", SECRET_HASH, [], ACTOR, REQUEST),
                kind=Invalid, code="INVALID_NAME")


def test_revoke_emits_revoked_with_org_id():
    key = given(issued())

    key.revoke(ACTOR, REQUEST)

    assert then(key) == [("Revoked", {"org_id": ORG_ID, "actor": ACTOR, "request_id": REQUEST})]
    assert key.revoked is True


def test_revoking_a_revoked_key_is_refused():
    key = given(issued())
    key.revoke(ACTOR, "r1")
    key = given(issued(), history(key))
    assert key.revoked is True

    refused(key, lambda: key.revoke(ACTOR, REQUEST), kind=Conflict, code="API_KEY_REVOKED")
