"""`@command`'s retry on the event store's IntegrityError (adr/0012): attempts, backoff, the final
409, and one observation per call. The first attempt runs without the retry machinery; the
schedule after a failure is the one it always was."""
from __future__ import annotations

import time

import pytest
from eventsourcing.persistence import IntegrityError

from application.commands import MAX_ATTEMPTS, command, retrying
from application.principal import Principal
from domain.base import current_metadata
from domain.errors import Conflict, Invalid

PRINCIPAL = Principal.user(__import__("uuid").UUID("00000000-0000-4000-8000-000000000001"))


class Fake:
    def __init__(self, failures: int, error: type[BaseException] = IntegrityError):
        self.failures, self.error, self.calls, self.observed = failures, error, 0, []
        self.command_observer = lambda name, exc, seconds: self.observed.append((name, exc))

    @command
    def act(self, principal: Principal, value: int, request_id: str) -> tuple[int, str, str]:
        self.calls += 1
        metadata = current_metadata()
        if self.calls <= self.failures:
            raise self.error("boom")
        return value, metadata.actor, metadata.request_id


@pytest.fixture
def waits(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def _bound(attempt: int) -> float:
    """The most the backoff after attempt n may wait (jittered exponential, capped)."""
    return min(0.05, 0.001 * 2 ** (attempt - 1))


def test_first_attempt_succeeds_without_waiting(waits):
    fake = Fake(0)
    assert fake.act(PRINCIPAL, 7, request_id="r1") == (7, PRINCIPAL.actor, "r1")
    assert fake.calls == 1 and waits == [] and fake.observed == [("act", None)]


def test_lost_races_are_retried_with_the_same_backoff(waits):
    fake = Fake(6)
    assert fake.act(PRINCIPAL, 3, request_id="r2") == (3, PRINCIPAL.actor, "r2")
    assert fake.calls == 7 and len(waits) == 6
    assert all(0 <= w <= _bound(n) for n, w in enumerate(waits, start=1)), waits
    assert fake.observed == [("act", None)]


def test_after_max_attempts_the_caller_gets_409(waits):
    fake = Fake(10**6)
    with pytest.raises(Conflict) as raised:
        fake.act(PRINCIPAL, 1, request_id="r3")
    assert raised.value.code == "CONCURRENT_MODIFICATION"
    assert fake.calls == MAX_ATTEMPTS == 30 and len(waits) == MAX_ATTEMPTS - 1
    assert all(0 <= w <= _bound(n) for n, w in enumerate(waits, start=1))
    assert max(waits) > 0.001 * 2  # later attempts do back off further (a uniform draw: never all tiny)
    assert len(fake.observed) == 1 and fake.observed[0][1] is raised.value


def test_a_domain_error_is_not_retried(waits):
    fake = Fake(1, Invalid)
    with pytest.raises(Invalid):
        fake.act(PRINCIPAL, 1, request_id="r4")
    assert fake.calls == 1 and waits == []
    assert len(fake.observed) == 1 and isinstance(fake.observed[0][1], Invalid)


def test_a_retry_that_then_fails_in_the_domain_raises_the_domain_error(waits):
    class Stale(Fake):
        @command
        def act(self, principal: Principal, value: int, request_id: str):
            self.calls += 1
            raise IntegrityError("race") if self.calls == 1 else Conflict("stale", code="PROMPT_VERSION_CONFLICT")

    fake = Stale(0)
    with pytest.raises(Conflict) as raised:
        fake.act(PRINCIPAL, 1, request_id="r5")
    assert raised.value.code == "PROMPT_VERSION_CONFLICT" and fake.calls == 2 and len(waits) == 1


def test_a_command_knows_whether_it_is_a_retry(waits):
    seen: list[bool] = []

    class Watching(Fake):
        @command
        def act(self, principal: Principal, value: int, request_id: str) -> int:
            seen.append(retrying())
            self.calls += 1
            if self.calls <= self.failures:
                raise self.error("boom")
            return value

    assert Watching(2).act(PRINCIPAL, 1, request_id="r") == 1
    assert seen == [False, True, True] and not retrying()  # and nothing left set after the command
