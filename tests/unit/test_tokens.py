"""TokenService: the development-secret warning and the cap on a token's accepted lifetime."""
from __future__ import annotations

import logging
import time
import uuid

import jwt
import pytest

from domain.errors import Unauthenticated
from interfaces.http.security import LEEWAY_SECONDS, TokenService
from interfaces.settings import DEV_JWT_SECRET, Settings

REAL_SECRET = "a-real-random-secret-of-at-least-32-characters-0123"
TEN_YEARS = 10 * 365 * 86_400


def _service(secret: str = DEV_JWT_SECRET, **overrides) -> TokenService:
    return TokenService(Settings(env="test", jwt_secret=secret, _env_file=None, **overrides))


def _mint(secret: str, *, lifetime: int, typ: str = "access", iat: int | None = None, **extra) -> str:
    now = int(time.time()) if iat is None else iat
    audience = "promptforge-api" if typ == "access" else "promptforge-api:refresh"
    claims = {"iss": "promptforge", "aud": audience, "sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()),
              "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex, "typ": typ, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")


def _refused(call, code: str = "INVALID_TOKEN") -> None:
    with pytest.raises(Unauthenticated) as refused:
        call()
    assert refused.value.code == code


# -- the development secret --------------------------------------------------------------------
def test_the_development_secret_is_announced_once_and_loudly(caplog):
    with caplog.at_level(logging.WARNING):
        _service(DEV_JWT_SECRET)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "PROMPTFORGE_JWT_SECRET" in message and "forge" in message and "source" in message
    assert DEV_JWT_SECRET not in caplog.text


def test_a_real_secret_is_not_announced_nor_logged(caplog):
    with caplog.at_level(logging.DEBUG):
        service = _service(REAL_SECRET)
        service.verify_access(service.access_token(uuid.uuid4(), uuid.uuid4()))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert REAL_SECRET not in caplog.text


# -- lifetimes ----------------------------------------------------------------------------------
def test_issued_tokens_are_accepted():
    service = _service(REAL_SECRET)
    user, session = uuid.uuid4(), uuid.uuid4()
    assert service.verify_access(service.access_token(user, session)).user_id == user
    assert service.verify_refresh(service.refresh_token(user, session, 3)).generation == 3


def test_a_correctly_signed_ten_year_access_token_is_refused():
    """Minted with the published development secret, valid for ten years: refused anyway."""
    service = _service(DEV_JWT_SECRET)
    _refused(lambda: service.verify_access(_mint(DEV_JWT_SECRET, lifetime=TEN_YEARS)))


def test_access_token_lifetime_is_capped_at_the_configured_ttl_plus_leeway():
    service = _service(REAL_SECRET, access_token_ttl_seconds=900)
    service.verify_access(_mint(REAL_SECRET, lifetime=900))
    service.verify_access(_mint(REAL_SECRET, lifetime=900 + LEEWAY_SECONDS))
    _refused(lambda: service.verify_access(_mint(REAL_SECRET, lifetime=900 + LEEWAY_SECONDS + 1)))
    _refused(lambda: service.verify_access(_mint(REAL_SECRET, lifetime=86_400)))


def test_an_old_iat_cannot_stretch_a_token_and_a_future_iat_is_refused():
    service = _service(REAL_SECRET, access_token_ttl_seconds=900)
    now = int(time.time())
    _refused(lambda: service.verify_access(_mint(REAL_SECRET, lifetime=3600, iat=now - 3000)))  # exp in 10 min
    _refused(lambda: service.verify_access(_mint(REAL_SECRET, lifetime=900, iat=now + 3600)))


def test_lowering_the_ttl_ends_tokens_issued_under_a_longer_one():
    long_lived = _service(REAL_SECRET, access_token_ttl_seconds=3600)
    token = long_lived.access_token(uuid.uuid4(), uuid.uuid4())
    long_lived.verify_access(token)
    _refused(lambda: _service(REAL_SECRET, access_token_ttl_seconds=900).verify_access(token))


def test_refresh_token_lifetime_is_capped_at_the_refresh_ttl():
    service = _service(REAL_SECRET, refresh_token_ttl_seconds=86_400)
    assert service.verify_refresh(_mint(REAL_SECRET, lifetime=86_400, typ="refresh", gen=0)).generation == 0
    _refused(lambda: service.verify_refresh(_mint(REAL_SECRET, lifetime=86_400 + LEEWAY_SECONDS + 1,
                                                  typ="refresh", gen=0)))
    _refused(lambda: service.verify_refresh(_mint(DEV_JWT_SECRET, lifetime=TEN_YEARS, typ="refresh", gen=0)))


@pytest.mark.parametrize("iat", ["soon", None, [1], 1e400])
def test_malformed_iat_is_refused_without_an_exception(iat):
    service = _service(REAL_SECRET)
    token = _mint(REAL_SECRET, lifetime=600, iat=0)
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(iat=iat, exp=int(time.time()) + 600)
    forged = jwt.encode({k: v for k, v in claims.items() if v is not None}, REAL_SECRET, algorithm="HS256")
    _refused(lambda: service.verify_access(forged))
