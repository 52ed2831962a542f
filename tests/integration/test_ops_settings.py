"""Configuration: production refuses a missing/development/short JWT secret, with a clear message,
from Settings, from `create_app()` and from `promptforge serve`."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from interfaces.cli import main
from interfaces.http.app import create_app
from interfaces.settings import DEV_JWT_SECRET, Settings

MESSAGE = "PROMPTFORGE_JWT_SECRET must be set"


@pytest.fixture
def production_env(monkeypatch, tmp_path):
    for name in ("PROMPTFORGE_JWT_SECRET",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROMPTFORGE_ENV", "production")
    monkeypatch.setenv("PROMPTFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env file is picked up


@pytest.mark.parametrize("secret", [None, "", DEV_JWT_SECRET, "short-secret"])
def test_production_refuses_weak_secret(secret, production_env, monkeypatch):
    if secret is not None:
        monkeypatch.setenv("PROMPTFORGE_JWT_SECRET", secret)
    with pytest.raises(ValidationError, match=MESSAGE):
        Settings()


def test_create_app_refuses_to_start(production_env):
    with pytest.raises(ValidationError, match=MESSAGE):
        create_app()


def test_serve_refuses_to_start(production_env):
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code != 0
    assert MESSAGE in result.output and "Traceback" not in result.output


def test_production_accepts_a_real_secret(production_env, monkeypatch):
    monkeypatch.setenv("PROMPTFORGE_JWT_SECRET", "x" * 48)
    settings = Settings()
    assert settings.env == "production" and settings.worker_metrics_port == 9100


def test_ops_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPTFORGE_RATE_LIMIT_PER_MINUTE", "42")
    monkeypatch.setenv("PROMPTFORGE_WORKER_METRICS_PORT", "9200")
    monkeypatch.setenv("PROMPTFORGE_CORS_ORIGINS", '["https://a.example"]')
    monkeypatch.setenv("PROMPTFORGE_LOG_LEVEL", "DEBUG")
    s = Settings()
    assert (s.rate_limit_per_minute, s.worker_metrics_port, s.cors_origins, s.log_level) == (
        42, 9200, ["https://a.example"], "DEBUG")
    monkeypatch.setenv("PROMPTFORGE_RATE_LIMIT_PER_MINUTE", "0")
    with pytest.raises(ValidationError):
        Settings()
