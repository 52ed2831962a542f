"""Webhook aggregate (given / when / then), the signature a receiver verifies, and the retry backoff."""
from __future__ import annotations

import hashlib
import hmac
import json
import random
from datetime import datetime, timezone
from uuid import UUID

import pytest

from application.security import derive_webhook_key, webhook_secret
from domain.errors import Conflict, Invalid
from domain.webhook import CHANGE_TYPES, Webhook, clean_events, clean_url
from projections.vocabulary import TYPES
from tests.unit.domain_helpers import ACTOR, REQUEST, attrs, by, given, history, refused, then, then_names
from workers.webhooks import dispatcher, sender
from workers.webhooks.dispatcher import DeliveryPolicy

HOOK_ID = UUID("00000000-0000-4000-8000-0000000000d1")
ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
URL = "https://ci.example.com/hooks/promptforge"


def created(events: list[str] | None = None) -> list:
    with by(ACTOR, "req-create"):
        return history(Webhook.create(HOOK_ID, ORG_ID, URL, events or ["prompt.label_moved"], "redeploy",
                                      request_hash="fp"))


def live(events: list[str] | None = None) -> Webhook:
    return given(created(events))


def deleted() -> Webhook:
    hook = live()
    with by(ACTOR, "req-delete"):
        hook.delete()
    return given(created(), hook.collect_events())


# -- creating ----------------------------------------------------------------------------------
def test_create_emits_created_with_the_cleaned_definition_and_no_secret():
    with by(ACTOR, REQUEST):
        hook = Webhook.create(HOOK_ID, ORG_ID, f"  {URL}  ", ["prompt.revised", "prompt.created", "prompt.revised"],
                              " deploys ", request_hash="fp")

    assert then(hook) == [("Created", {
        "org_id": ORG_ID, "url": URL, "events": ["prompt.created", "prompt.revised"], "description": "deploys",
        "request_hash": "fp", "actor": ACTOR, "request_id": REQUEST,
    })]
    assert (hook.id, hook.generation, hook.enabled, hook.deleted, hook.disabled_reason) == (HOOK_ID, 1, True, False, "")


def test_created_webhook_replays():
    hook = live()

    assert (hook.org_id, hook.url, hook.events, hook.description, hook.generation, hook.enabled, hook.deleted,
            hook.request_hash) == (ORG_ID, URL, ["prompt.label_moved"], "redeploy", 1, True, False, "fp")


@pytest.mark.parametrize("events", [["*"], ["*", "prompt.created"], ["prompt.revised", " * "]])
def test_star_stands_for_every_type_and_absorbs_the_others(events):
    with by(ACTOR, REQUEST):
        hook = Webhook.create(HOOK_ID, ORG_ID, URL, events)

    ((_, event),) = then(hook)
    assert event["events"] == ["*"] and hook.events == ["*"]


@pytest.mark.parametrize("url", [
    "", "   ", "ftp://example.com/x", "example.com/hook", "//example.com/x", "http:///path", "https://",
    "http://user:pw@example.com/", "http://user@example.com/", "http://exa mple.com/", "http://example.com/a b",
    "http://example.com/\x00", "http://example.com/\x01", "http://example.com/\x7f", "http://example.com/a\u2028b",
    "http://example.com/\u200b", "http://example.com:99999/", "http://example.com:0/",
    "http://example.com:port/", "http://[::1/", "http://[not-an-ip]/", "http://example.com/" + "x" * 2000,
])
def test_invalid_urls_are_refused(url):
    refused(None, lambda: Webhook.create(HOOK_ID, ORG_ID, url, ["*"]), kind=Invalid, code="INVALID_WEBHOOK_URL")


@pytest.mark.parametrize("url", [None, 42, ["http://example.com/"]])
def test_a_url_that_is_not_a_string_is_refused(url):
    refused(None, lambda: clean_url(url), kind=Invalid, code="INVALID_WEBHOOK_URL")


@pytest.mark.parametrize("url", ["http://example.com", "https://example.com:8443/a?b=c", "http://[2001:db8::1]:8080/x",
                                 "HTTPS://Example.COM/Path"])
def test_valid_urls_are_kept(url):
    assert clean_url(url) == url


def test_unknown_event_types_are_refused_with_the_allowed_ones():
    error = refused(None, lambda: Webhook.create(HOOK_ID, ORG_ID, URL, ["prompt.created", "prompt.exploded", "Prompt"]),
                    kind=Invalid, code="INVALID_WEBHOOK_EVENTS")

    assert error.details == {"unknown": ["Prompt", "prompt.exploded"], "allowed": ["*", *CHANGE_TYPES]}


@pytest.mark.parametrize("events", [[], "prompt.created", None, [""], ["prompt.created", None]])
def test_empty_or_malformed_event_lists_are_refused(events):
    refused(None, lambda: Webhook.create(HOOK_ID, ORG_ID, URL, events), kind=Invalid, code="INVALID_WEBHOOK_EVENTS")


def test_every_change_type_is_subscribable_and_the_vocabulary_is_the_feeds():
    assert clean_events(list(CHANGE_TYPES)) == sorted(CHANGE_TYPES)
    assert sorted(t for t, _ in TYPES.values()) == sorted(CHANGE_TYPES)
    assert {TYPES[cls][0] for cls in (Webhook.Created, Webhook.Updated, Webhook.SecretRotated, Webhook.Disabled,
                                      Webhook.Enabled, Webhook.Deleted)} == {t for t in CHANGE_TYPES if
                                                                             t.startswith("webhook.")}


@pytest.mark.parametrize("description", ["x" * 501, "bell\x07", "zero\u200bwidth"])
def test_invalid_descriptions_are_refused(description):
    refused(None, lambda: Webhook.create(HOOK_ID, ORG_ID, URL, ["*"], description), kind=Invalid,
            code="INVALID_MESSAGE")


# -- updating ---------------------------------------------------------------------------------
def test_update_emits_the_whole_new_definition():
    hook = live()
    with by(ACTOR, REQUEST):
        hook.update(url="https://other.example.com/h", events=["*"])

    assert then(hook) == [("Updated", {"org_id": ORG_ID, "url": "https://other.example.com/h", "events": ["*"],
                                       "description": "redeploy", "actor": ACTOR, "request_id": REQUEST})]
    assert (hook.url, hook.events, hook.description) == ("https://other.example.com/h", ["*"], "redeploy")


@pytest.mark.parametrize("change", [
    {}, {"url": URL}, {"url": f" {URL} "}, {"events": ["prompt.label_moved", "prompt.label_moved"]},
    {"description": " redeploy "}, {"url": URL, "events": ["prompt.label_moved"], "description": "redeploy"},
])
def test_an_update_that_changes_nothing_emits_nothing(change):
    hook = live()
    with by(ACTOR, REQUEST):
        hook.update(**change)

    assert then(hook) == []


def test_reordered_events_are_no_change():
    hook = live(["prompt.created", "prompt.revised"])
    with by(ACTOR, REQUEST):
        hook.update(events=["prompt.revised", "prompt.created"])

    assert then(hook) == []


@pytest.mark.parametrize("change, code", [({"url": "ftp://x"}, "INVALID_WEBHOOK_URL"),
                                          ({"events": []}, "INVALID_WEBHOOK_EVENTS"),
                                          ({"events": ["nope"]}, "INVALID_WEBHOOK_EVENTS"),
                                          ({"description": "x" * 501}, "INVALID_MESSAGE")])
def test_an_invalid_update_is_refused(change, code):
    hook = live()
    refused(hook, lambda: hook.update(**change), kind=Invalid, code=code)
    assert hook.url == URL


# -- the secret generation ------------------------------------------------------------------------
def test_rotating_bumps_the_generation():
    hook = live()
    with by(ACTOR, REQUEST):
        assert hook.rotate_secret() == 2
        assert hook.rotate_secret() == 3

    assert then(hook) == [("SecretRotated", {"org_id": ORG_ID, "generation": 2, "actor": ACTOR, "request_id": REQUEST}),
                          ("SecretRotated", {"org_id": ORG_ID, "generation": 3, "actor": ACTOR, "request_id": REQUEST})]
    assert hook.generation == 3


def test_the_secret_is_derived_from_key_id_and_generation_and_never_in_an_event():
    key = derive_webhook_key("server secret")
    secret = webhook_secret(key, HOOK_ID, 1)

    assert secret.startswith("whsec_") and len(secret) >= 40
    assert webhook_secret(key, HOOK_ID, 1) == secret
    others = {webhook_secret(key, HOOK_ID, 2), webhook_secret(key, UUID(int=1), 1),
              webhook_secret(derive_webhook_key("another secret"), HOOK_ID, 1)}
    assert secret not in others and len(others) == 3
    hook = live()
    with by(ACTOR, REQUEST):
        hook.rotate_secret()
        hook.disable("x")
    events = [*created(), *hook.collect_events()]
    assert all("secret" not in name for e in events for name in attrs(e))
    assert all(webhook_secret(key, HOOK_ID, g) not in json.dumps(attrs(e), default=str) for e in events for g in (1, 2))


# -- disabling, enabling, deleting ----------------------------------------------------------------
def test_disable_and_enable():
    hook = live()
    with by("system:webhooks", "r-disable"):
        hook.disable("disabled after 60 consecutive failed deliveries")
        hook.disable("again")  # already disabled: nothing
    assert then(hook) == [("Disabled", {"org_id": ORG_ID, "reason": "disabled after 60 consecutive failed deliveries",
                                        "actor": "system:webhooks", "request_id": "r-disable"})]
    assert (hook.enabled, hook.disabled_reason) == (False, "disabled after 60 consecutive failed deliveries")

    with by(ACTOR, REQUEST):
        hook.enable()
        hook.enable()  # already enabled: nothing
    assert then(hook) == [("Enabled", {"org_id": ORG_ID, "actor": ACTOR, "request_id": REQUEST})]
    assert (hook.enabled, hook.disabled_reason) == (True, "")


def test_disabled_webhook_replays_disabled():
    hook = live()
    with by("system:webhooks", "r"):
        hook.disable("failing")
    replayed = given(created(), hook.collect_events())

    assert (replayed.enabled, replayed.disabled_reason, replayed.deleted) == (False, "failing", False)


def test_delete():
    hook = live()
    with by(ACTOR, REQUEST):
        hook.delete()

    assert then(hook) == [("Deleted", {"org_id": ORG_ID, "actor": ACTOR, "request_id": REQUEST})]
    assert (hook.deleted, hook.enabled) == (True, False)


@pytest.mark.parametrize("command", [
    lambda h: h.update(url="https://x.example.com/"), lambda h: h.update(), lambda h: h.rotate_secret(),
    lambda h: h.disable("x"), lambda h: h.enable(), lambda h: h.delete(),
])
def test_a_deleted_webhook_refuses_everything(command):
    hook = deleted()
    refused(hook, lambda: command(hook), kind=Conflict, code="WEBHOOK_DELETED")


def test_commands_outside_acting_are_a_programming_error():
    hook = live()
    with pytest.raises(Exception, match="acting"):
        hook.rotate_secret()
    assert then_names(hook) == []


# -- the signature (what a receiver verifies) -----------------------------------------------------
SECRET = "whsec_test-secret"
BODY = b'{"delivery_id":"d","position":7,"type":"prompt.created"}'
T = 1_760_000_000


def test_signature_is_hmac_sha256_over_timestamp_dot_raw_body():
    header = sender.signature(SECRET, BODY, T)

    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    assert sender.verify(SECRET, BODY, header, now=T)


def test_signature_without_a_timestamp_uses_now():
    header = sender.signature(SECRET, BODY)

    assert sender.verify(SECRET, BODY, header)


@pytest.mark.parametrize("offset, ok", [(0, True), (299, True), (300, True), (301, False), (-300, True),
                                        (-301, False), (86_400, False)])
def test_verify_refuses_timestamps_outside_the_tolerance(offset, ok):
    assert sender.verify(SECRET, BODY, sender.signature(SECRET, BODY, T), now=T + offset) is ok


def test_verify_with_a_custom_tolerance():
    header = sender.signature(SECRET, BODY, T)

    assert sender.verify(SECRET, BODY, header, tolerance_seconds=10, now=T + 10)
    assert not sender.verify(SECRET, BODY, header, tolerance_seconds=10, now=T + 11)


def test_verify_refuses_a_tampered_body_or_a_wrong_secret():
    header = sender.signature(SECRET, BODY, T)

    assert not sender.verify(SECRET, BODY.replace(b"7", b"8"), header, now=T)
    assert not sender.verify(SECRET, BODY + b"\n", header, now=T)
    assert not sender.verify("whsec_other", BODY, header, now=T)
    # The timestamp is signed too: replaying the mac under a fresh timestamp fails.
    mac = header.split("v1=")[1]
    assert not sender.verify(SECRET, BODY, f"t={T + 60},v1={mac}", now=T + 60)


@pytest.mark.parametrize("header", [
    "", "garbage", f"t={T}", f"v1={'0' * 64}", f"t=soon,v1={'0' * 64}", f"t={T},v1=", f"t={T},v1=zz",
    f"t={T},v1=\u00e9\u00e9", f"t={T}, v1={'0' * 64}", f"t={T};v1={'0' * 64}", None,
])
def test_verify_refuses_malformed_headers_without_raising(header):
    assert sender.verify(SECRET, BODY, header, now=T) is False


# -- deliveries and backoff -----------------------------------------------------------------------
def test_delivery_ids_are_stable_per_webhook_and_position():
    a = dispatcher.delivery_id(str(HOOK_ID), 7)

    assert a == dispatcher.delivery_id(str(HOOK_ID), 7)
    assert len({a, dispatcher.delivery_id(str(HOOK_ID), 8), dispatcher.delivery_id(str(UUID(int=2)), 7)}) == 3
    assert UUID(a).version == 5


def test_body_is_the_change_with_the_delivery_ids_as_compact_sorted_json():
    change = {"org_id": str(ORG_ID), "position": 7, "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
              "type": "prompt.label_moved", "audience": "prompts", "prompt_id": "p", "name": "greet", "version": 2,
              "label": "production", "actor": ACTOR, "details": {"from_version": 1}}
    text = dispatcher.body(change, str(HOOK_ID), "d-1")

    document = json.loads(text)
    assert document["delivery_id"] == "d-1" and document["webhook_id"] == str(HOOK_ID)
    assert (document["position"], document["label"], document["details"]) == (7, "production", {"from_version": 1})
    assert document["at"] == "2026-01-02T03:04:05Z"  # RFC 3339, as the change feed answers it
    assert text == json.dumps(document, separators=(",", ":"), sort_keys=True)
    naive = {**change, "at": datetime(2026, 1, 2, 3, 4, 5, 250000)}  # SQLite hands back naive UTC
    assert json.loads(dispatcher.body(naive, str(HOOK_ID), "d-1"))["at"] == "2026-01-02T03:04:05.250000Z"


def test_subscribed():
    assert dispatcher.subscribed({"events": ["*"]}, "api_key.issued")
    assert dispatcher.subscribed({"events": ["prompt.created"]}, "prompt.created")
    assert not dispatcher.subscribed({"events": ["prompt.created"]}, "prompt.revised")


class _Edge(random.Random):
    """A generator pinned to one end of [0, 1)."""

    def __init__(self, value: float):
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_is_exponential_with_jitter_over_the_upper_half():
    policy = DeliveryPolicy(retry_base_seconds=10, retry_max_seconds=3600)
    rng = random.Random(12)
    for failures in range(1, 16):
        step = min(3600, 10 * 2 ** (failures - 1))
        samples = [policy.backoff(failures, rng) for _ in range(200)]
        assert all(step / 2 <= s <= step for s in samples), (failures, min(samples), max(samples))
        assert len(set(samples)) > 100, "jittered"
        assert policy.backoff(failures, _Edge(0.0)) == step / 2
        assert policy.backoff(failures, _Edge(0.999999)) == pytest.approx(step, rel=1e-5)


def test_backoff_is_capped():
    policy = DeliveryPolicy(retry_base_seconds=0.05, retry_max_seconds=0.2)

    assert policy.backoff(1, _Edge(0.0)) == 0.025
    assert policy.backoff(3, _Edge(0.999999)) == pytest.approx(0.2, rel=1e-5)
    assert all(0.1 <= policy.backoff(n) <= 0.2 for n in range(3, 2000))  # 2**2000 would overflow a float
    assert 0.025 <= policy.backoff(0) <= 0.05


def test_policy_from_settings():
    from interfaces.settings import Settings

    settings = Settings(webhook_timeout_seconds=3, webhook_retry_base_seconds=1, webhook_retry_max_seconds=9,
                        webhook_max_consecutive_failures=4, webhook_failure_budget_seconds=60,
                        webhooks_allow_private_networks=True)

    assert DeliveryPolicy.from_settings(settings) == DeliveryPolicy(3, 1, 9, 4, 60, True)
    assert DeliveryPolicy.from_settings(Settings()) == DeliveryPolicy(10.0, 10.0, 3600.0, 60, 86_400.0, False)


def test_the_readme_receiver_snippet_verifies_what_the_sender_signs():
    """The verification code receivers copy from the README accepts a real signature, and refuses
    a tampered body, a wrong secret and a stale timestamp."""
    import re
    import time
    from pathlib import Path

    from workers.webhooks.sender import signature

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "def verify(" in block)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    verify = namespace["verify"]
    body = b'{"type": "prompt.revised", "position": 42}'
    header = signature("s3cret", body)
    assert verify("s3cret", body, header)
    assert not verify("s3cret", body + b" ", header)
    assert not verify("other", body, header)
    assert not verify("s3cret", body, signature("s3cret", body, int(time.time()) - 301))
