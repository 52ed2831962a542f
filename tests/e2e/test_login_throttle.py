"""The login throttle over HTTP: counted before the password is checked, per account at one address,
per address, and per account across addresses (interfaces.http.throttling)."""
from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from tests.e2e.support import PASSWORD, assert_error

WRONG = "wrong password!!"


def _from(api, address: str) -> TestClient:
    """Another client of the same app, connecting from `address`."""
    return TestClient(api.app, client=(address, 40000))


def _login(client: TestClient, email: str, password: str = PASSWORD):
    return client.post("/v1/auth/login", json={"email": email, "password": password})


def _refused(response) -> None:
    body = assert_error(response, 429, "TOO_MANY_LOGIN_ATTEMPTS")
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert body["error"]["details"]["retry_after_seconds"] >= 1


def test_concurrent_attempts_on_one_account_reach_verification_at_most_limit_times(api_factory):
    """Every attempt is counted before its password is verified: 12 at once with a limit of 2 -> 2 verified.

    Verification is held until every request is either refused or verifying, so a throttle that
    only counts failures after verifying lets all 12 in, deterministically."""
    attempts = 12
    api = api_factory(login_attempts_per_minute=2, login_attempts_per_address_per_minute=100)
    api.register("concurrent@example.com")
    real_login = api.container.app.login
    state = threading.Condition()
    counts = {"verifying": 0, "answered": 0}

    def held_login(*args, **kwargs):
        with state:
            counts["verifying"] += 1
            state.notify_all()
            assert state.wait_for(lambda: counts["verifying"] + counts["answered"] == attempts, timeout=60)
        return real_login(*args, **kwargs)

    api.container.app.login = held_login
    statuses: list[int] = []

    def one_attempt() -> None:
        response = api.login("concurrent@example.com", WRONG)
        with state:
            statuses.append(response.status_code)
            if response.status_code == 429:
                counts["answered"] += 1
            state.notify_all()

    threads = [threading.Thread(target=one_attempt) for _ in range(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(statuses) == [401] * 2 + [429] * (attempts - 2), statuses
    assert counts["verifying"] == 2


def test_address_limit_bites_across_many_accounts(api):
    """Password spraying: one address, 40 different emails (existing and unknown), default settings."""
    limit = api.container.settings.login_attempts_per_address_per_minute
    assert limit == 30 and api.container.settings.login_attempts_per_minute == 10
    emails = []
    for i in range(20):
        api.register(f"sprayed{i}@example.com")
        emails += [f"sprayed{i}@example.com", f"unknown{i}@example.com"]
    responses = [api.login(email, WRONG) for email in emails]
    for response in responses[:limit]:
        assert_error(response, 401, "INVALID_CREDENTIALS")
    for response in responses[limit:]:
        _refused(response)
    assert len(responses[limit:]) == 10


def test_attacker_at_one_address_does_not_lock_out_the_owner_elsewhere(api_factory):
    api = api_factory(login_attempts_per_minute=3)
    api.register("victim@example.com")
    attacker, owner = _from(api, "203.0.113.7"), _from(api, "198.51.100.9")
    for _ in range(3):
        assert_error(_login(attacker, "victim@example.com", WRONG), 401, "INVALID_CREDENTIALS")
    _refused(_login(attacker, "victim@example.com", WRONG))
    _refused(_login(attacker, "victim@example.com"))  # even the right password, from that address
    assert _login(owner, "victim@example.com").status_code == 200
    # the attacker's address is not locked out of other accounts by one account's bucket
    api.register("bystander@example.com")
    assert _login(attacker, "bystander@example.com").status_code == 200


def test_distributed_guessing_hits_the_per_account_backstop(api_factory):
    """Across all addresses an account takes 10x the per-address-and-account limit, then 429 everywhere."""
    api = api_factory(login_attempts_per_minute=2)
    api.register("target@example.com")
    for i in range(10):
        client = _from(api, f"192.0.2.{i + 1}")
        for _ in range(2):
            assert_error(_login(client, "target@example.com", WRONG), 401, "INVALID_CREDENTIALS")
        _refused(_login(client, "target@example.com", WRONG))  # refused here: does not count in the backstop
    _refused(_login(_from(api, "192.0.2.200"), "target@example.com"))
    api.register("other@example.com")
    assert _login(_from(api, "192.0.2.201"), "other@example.com").status_code == 200


def test_successful_login_clears_the_account_bucket_of_that_address(api_factory):
    api = api_factory(login_attempts_per_minute=3)
    api.register("typo@example.com")
    for _ in range(2):
        assert_error(api.login("typo@example.com", WRONG), 401, "INVALID_CREDENTIALS")
    assert api.login("typo@example.com").status_code == 200
    for _ in range(2):
        assert_error(api.login("typo@example.com", WRONG), 401, "INVALID_CREDENTIALS")
    assert api.login("typo@example.com").status_code == 200


def test_unknown_accounts_are_throttled_like_existing_ones(api_factory):
    api = api_factory(login_attempts_per_minute=2)
    for _ in range(2):
        assert_error(api.login("nobody@example.com", WRONG), 401, "INVALID_CREDENTIALS")
    _refused(api.login(" NOBODY@example.com ", WRONG))  # the account key is the normalised email


def test_a_refused_attempt_never_reaches_password_verification(api_factory):
    api = api_factory(login_attempts_per_minute=1)
    api.register("once@example.com")
    verified = []
    real_login = api.container.app.login

    def counting_login(*args, **kwargs):
        verified.append(args[0])
        return real_login(*args, **kwargs)

    api.container.app.login = counting_login
    assert_error(api.login("once@example.com", WRONG), 401)
    _refused(api.login("once@example.com"))
    assert verified == ["once@example.com"]
