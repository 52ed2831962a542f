"""TokenService remembers verified access tokens (adr/0020): a token presented again is not decoded
again, but its expiry is still checked (PyJWT's rule, same leeway); refused tokens are not remembered."""
from __future__ import annotations

import uuid

import jwt
import pytest

import interfaces.http.security as security
from domain.errors import Unauthenticated
from interfaces.http.security import LEEWAY_SECONDS, TokenService
from interfaces.settings import Settings

SECRET = "a-real-random-secret-of-at-least-32-characters-0123"


def service(**overrides) -> TokenService:
    return TokenService(Settings(env="test", jwt_secret=SECRET, _env_file=None, **overrides))


def counting_decode(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = jwt.decode

    def decode(token, *args, **kwargs):
        calls.append(token)
        return original(token, *args, **kwargs)

    monkeypatch.setattr(security.jwt, "decode", decode)
    return calls


def test_a_token_is_decoded_once_and_answers_the_same(monkeypatch):
    tokens = service()
    calls = counting_decode(monkeypatch)
    user, session = uuid.uuid4(), uuid.uuid4()
    token = tokens.access_token(user, session)
    answers = {tokens.verify_access(token) for _ in range(5)}
    assert len(calls) == 1
    (claims,) = answers
    assert (claims.user_id, claims.session_id) == (user, session)


def test_a_remembered_token_still_expires(monkeypatch):
    tokens = service(access_token_ttl_seconds=60)
    token = tokens.access_token(uuid.uuid4(), uuid.uuid4())
    tokens.verify_access(token)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    monkeypatch.setattr(security.time, "time", lambda: exp + LEEWAY_SECONDS - 0.5)
    tokens.verify_access(token)  # within the leeway, as PyJWT
    monkeypatch.setattr(security.time, "time", lambda: exp + LEEWAY_SECONDS)
    with pytest.raises(Unauthenticated) as refused:
        tokens.verify_access(token)
    assert refused.value.code == "TOKEN_EXPIRED"


def test_refused_tokens_are_not_remembered(monkeypatch):
    tokens = service()
    calls = counting_decode(monkeypatch)
    forged = jwt.encode({"sub": str(uuid.uuid4())}, "another-secret-of-at-least-32-characters!!", algorithm="HS256")
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            tokens.verify_access(forged)
    assert len(calls) == 3
    refresh = tokens.refresh_token(uuid.uuid4(), uuid.uuid4(), 0)  # right signature, wrong kind
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            tokens.verify_access(refresh)


def test_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(security, "VERIFIED_TOKENS", 3)
    tokens = service()
    calls = counting_decode(monkeypatch)
    minted = [tokens.access_token(uuid.uuid4(), uuid.uuid4()) for _ in range(4)]
    for token in minted:
        tokens.verify_access(token)
    tokens.verify_access(minted[0])  # the oldest was forgotten
    tokens.verify_access(minted[3])
    assert calls == [*minted, minted[0]]
