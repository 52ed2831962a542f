"""Verified-key and grant memos over the access cache (application.credentials.VerifiedKeys,
application.request_access.Grants): reused only while the cache hands out the very object they were
decided from, so an event for the key or the organisation (which replaces that object) is decided
again on the next request, as adr/0020 guarantees."""
from __future__ import annotations

import copy
import hashlib
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError

import application.credentials as credentials
from application.access_cache import AccessCache
from application.principal import Principal
from application.request_access import AccessReads, RequestAccess
from application.security import new_api_key
from domain.api_key import ApiKey
from domain.errors import Forbidden, NotFound, Unauthenticated
from domain.organisation import Organisation
from domain.permissions import Permission, Role
from tests.unit.domain_helpers import by

OWNER, MEMBER = uuid4(), uuid4()


class Store:
    """Aggregates by id; every load is a new copy, as the repository hands out."""

    def __init__(self) -> None:
        self.aggregates: dict[UUID, object] = {}
        self.loads = 0

    def load(self, aggregate_id: UUID):
        self.loads += 1
        if aggregate_id not in self.aggregates:
            raise AggregateNotFoundError(aggregate_id)
        return copy.deepcopy(self.aggregates[aggregate_id])

    def change(self, cache: AccessCache, aggregate, command) -> None:
        """Apply a command to the stored aggregate, then tell the cache (as LogHead does)."""
        with by("user:" + str(OWNER)):
            command(aggregate)
        aggregate.collect_events()
        cache.evict([aggregate.id])


@pytest.fixture
def world():
    store = Store()
    org_id = uuid4()
    with by("user:" + str(OWNER)):
        org = Organisation.create(org_id, "Acme", OWNER, plan="PRO")
        org.add_member(MEMBER, "admin", by_role=Role.OWNER)
    org.collect_events()
    key_id = uuid4()
    raw, prefix, secret_hash = new_api_key(key_id)
    with by("user:" + str(MEMBER)):
        key = ApiKey.issue(key_id, org_id, "k", prefix, secret_hash, ["prompts:read", "prompts:write"],
                           issued_by=f"user:{MEMBER}")
    key.collect_events()
    store.aggregates.update({org_id: org, key_id: key})
    cache = AccessCache(store.load)
    return store, cache, org, key, raw


def access(cache: AccessCache) -> RequestAccess:
    return RequestAccess(AccessReads(cache.get), head=1)


def counting_verifications(monkeypatch) -> list[int]:
    calls = [0]
    original = credentials.secret_matches

    def counted(secret: str, stored: str) -> bool:
        calls[0] += 1
        return original(secret, stored)

    monkeypatch.setattr(credentials, "secret_matches", counted)
    return calls


def test_a_verified_key_is_not_verified_again_while_its_object_is_unchanged(world, monkeypatch):
    store, cache, org, key, raw = world
    verifications = counting_verifications(monkeypatch)
    first = access(cache).api_key(raw)
    second = access(cache).api_key(raw)
    assert second is first and first.api_key_id == key.id and first.key_org_id == org.id
    assert verifications[0] == 1
    assert store.loads == 1  # the key, once


def test_a_revocation_applies_to_the_next_request(world, monkeypatch):
    store, cache, org, key, raw = world
    verifications = counting_verifications(monkeypatch)
    access(cache).api_key(raw)
    store.change(cache, key, ApiKey.revoke)
    with pytest.raises(Unauthenticated) as refused:
        access(cache).api_key(raw)
    assert refused.value.code == "API_KEY_REVOKED"
    assert verifications[0] == 2
    with pytest.raises(Unauthenticated):  # and stays refused (refusals are not remembered)
        access(cache).api_key(raw)


def test_a_wrong_secret_for_a_remembered_key_is_refused(world):
    _, cache, _, key, raw = world
    access(cache).api_key(raw)
    scheme, key_hex, secret = raw.split("_", 2)
    wrong = f"{scheme}_{key_hex}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    with pytest.raises(Unauthenticated) as refused:
        access(cache).api_key(wrong)
    assert refused.value.code == "INVALID_API_KEY"
    assert access(cache).api_key(raw).api_key_id == key.id


def test_the_raw_key_is_not_kept(world):
    _, cache, _, _, raw = world
    access(cache).api_key(raw)
    memo = cache.derived["verified_keys"]
    secret = raw.split("_", 2)[2]
    assert len(memo) == 1
    for digest, entry in memo._entries.items():
        assert isinstance(digest, bytes) and secret.encode() not in digest
        assert digest not in (hashlib.sha256(raw.encode()).digest(), hashlib.blake2b(raw.encode()).digest())
        assert not any(isinstance(part, str) for part in entry)
        assert raw not in repr(entry) and secret not in repr(entry)


def test_memos_are_bounded(world):
    store, cache, org, _, _ = world
    memo_size = 3
    reads = AccessReads(cache.get)
    reads.verified_keys.maxsize = memo_size
    keys = []
    for _ in range(5):
        key_id = uuid4()
        raw, prefix, secret_hash = new_api_key(key_id)
        with by("user:" + str(MEMBER)):
            key = ApiKey.issue(key_id, org.id, "k", prefix, secret_hash, ["prompts:read"], issued_by=f"user:{MEMBER}")
        store.aggregates[key_id] = key
        keys.append(raw)
    for raw in keys:
        RequestAccess(reads, 1).api_key(raw)
    assert len(reads.verified_keys) == memo_size
    assert RequestAccess(reads, 1).api_key(keys[0]).api_key_id is not None  # forgotten: verified again


def test_a_member_grant_is_decided_again_after_a_removal_or_demotion(world):
    store, cache, org, _, _ = world
    member = Principal.user(MEMBER)
    grant = access(cache).grant(member, org.id, Permission.API_KEYS_MANAGE)
    assert access(cache).grant(Principal.user(MEMBER), org.id) is grant  # remembered
    store.change(cache, org, lambda o: o.change_role(MEMBER, "viewer", by_role=Role.OWNER))
    with pytest.raises(Forbidden):
        access(cache).grant(member, org.id, Permission.API_KEYS_MANAGE)
    assert access(cache).grant(member, org.id).role is Role.VIEWER
    store.change(cache, org, lambda o: o.remove_member(MEMBER, by_role=Role.OWNER))
    with pytest.raises(NotFound):
        access(cache).grant(member, org.id)


def test_a_key_grant_follows_its_issuer_and_its_own_state(world):
    store, cache, org, key, raw = world
    principal = access(cache).api_key(raw)
    grant = access(cache).grant(principal, org.id, Permission.PROMPTS_WRITE)
    assert access(cache).grant(access(cache).api_key(raw), org.id) is grant  # remembered
    store.change(cache, org, lambda o: o.change_role(MEMBER, "viewer", by_role=Role.OWNER))
    principal = access(cache).api_key(raw)
    with pytest.raises(Forbidden):  # the issuer may no longer write: neither may the key
        access(cache).grant(principal, org.id, Permission.PROMPTS_WRITE)
    store.change(cache, org, lambda o: o.remove_member(MEMBER, by_role=Role.OWNER))
    with pytest.raises(Unauthenticated) as refused:
        access(cache).grant(access(cache).api_key(raw), org.id)
    assert refused.value.code == "API_KEY_DISABLED"
    with pytest.raises(NotFound):  # another organisation: never from the memo
        access(cache).grant(principal, uuid4())


def test_nothing_is_remembered_over_the_repository(world):
    store, _, org, _, raw = world
    reads = AccessReads(store.load)
    assert reads.verified_keys is None and reads.grants is None
    assert RequestAccess(reads, None).api_key(raw).key_org_id == org.id
