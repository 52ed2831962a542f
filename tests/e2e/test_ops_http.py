"""Operations over HTTP: liveness, readiness (each dependency down), metrics, rate limits, headers."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine

from tests.e2e.support import assert_error

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")


def _metric(text: str, name: str, **labels) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_healthz_and_readyz_ok(api):
    r = api.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = api.get("/readyz")
    assert r.status_code == 200, r.text
    checks = r.json()["checks"]
    assert set(checks) == {"event_store", "read_model"}
    for check in checks.values():
        assert check["status"] == "ok" and check["latency_ms"] >= 0


def test_readyz_redis_down_is_degraded_not_unavailable(api_factory):
    """Redis down stops nothing (commands commit to the event store, nudges are best-effort, limits
    fail open): a load balancer must keep routing to the instance, so 200 `degraded`, not 503."""
    api = api_factory(redis_url="redis://127.0.0.1:1/0")
    r = api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "degraded"
    checks = r.json()["checks"]
    assert checks["redis"]["status"] == "error" and "latency_ms" in checks["redis"]
    assert checks["event_store"]["status"] == "ok" and checks["read_model"]["status"] == "ok"
    # ... and indeed commands and queries succeed meanwhile.
    user = api.user()
    org = api.org(user)
    api.prompt(user, org)
    assert api.q(f"/v1/orgs/{org}/prompts", user).json()["items"]
    assert api.get("/v1/me", headers=user.h).status_code == 200
    assert api.get("/healthz").status_code == 200


def test_readyz_qdrant_down_is_degraded(api_factory):
    """Without Qdrant, semantic search is unavailable but everything else (and hybrid search, with
    keyword results) answers: degraded, not a reason to take the instance out of rotation."""
    api = api_factory(qdrant_url="http://127.0.0.1:1", vectors_enabled=True)
    r = api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "degraded"
    checks = r.json()["checks"]
    assert checks["qdrant"]["status"] == "error"
    assert checks["event_store"]["status"] == "ok" and checks["read_model"]["status"] == "ok"


def test_readyz_read_model_down(api):
    good = api.container.engine
    api.container.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none",
                                         connect_args={"connect_timeout": 1})
    try:
        r = api.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "unavailable"
        checks = r.json()["checks"]
        assert checks["read_model"]["status"] == "error" and checks["read_model"]["error"]
        assert checks["event_store"]["status"] == "ok"
        assert "nobody" not in r.text  # no connection details leak
        metrics = api.get("/metrics")  # scrapes keep working while the read model is down
        assert metrics.status_code == 200
    finally:
        api.container.engine.dispose()
        api.container.engine = good


def test_metrics_commands_routes_and_lag(api):
    owner = api.user()
    org = api.org(owner)
    pid = api.prompt(owner, org)
    stale = api.post(f"/v1/orgs/{org}/prompts/{pid}/versions", json={"base_version": 7, "template": "x"},
                     headers=owner.h)
    assert stale.status_code == 409
    api.q(f"/v1/orgs/{org}/prompts", owner)
    text = api.get("/metrics").text
    assert _metric(text, "promptforge_commands_total", command="create_prompt", outcome="ok") == 1
    assert _metric(text, "promptforge_commands_total", command="revise_prompt", outcome="conflict") == 1
    assert _metric(text, "promptforge_http_requests_total", method="GET", route="/v1/orgs/{org_id}/prompts",
                   status="200") >= 1
    assert _metric(text, "promptforge_http_request_duration_seconds_count", method="POST",
                   route="/v1/orgs/{org_id}/prompts") == 1
    routes = re.findall(r'route="([^"]*)"', text)
    assert routes and not any(UUID_RE.search(r) for r in routes), "route labels must be templates"
    for name in ("promptforge_projection_position", "promptforge_projection_lag_events",
                 "promptforge_projection_lag_seconds"):
        assert _metric(text, name, projection="catalogue") is not None, name
    assert "# TYPE promptforge_search_duration_seconds histogram" in text
    assert "# TYPE promptforge_embedding_batch_seconds histogram" in text


def test_metrics_search_duration(api):
    owner = api.user()
    org = api.org(owner)
    api.prompt(owner, org, name="summarise", template="Summarise {{text}}")
    r = api.search(org, owner, {"query": "summarise", "mode": "keyword"})
    assert r.status_code == 200, r.text
    text = api.get("/metrics").text
    assert _metric(text, "promptforge_search_duration_seconds_count", mode="keyword") == 1


def test_rate_limit_per_api_key_and_org(api_factory):
    api = api_factory(rate_limit_per_minute=5)
    owner = api.user()
    org = api.org(owner)
    key = api.key(owner, org, ["prompts:read"])
    seen = []
    for _ in range(8):
        r = api.get(f"/v1/orgs/{org}/prompts", headers=key.h)
        seen.append(r)
        if r.status_code == 429:
            break
    ok = [r for r in seen if r.status_code == 200]
    assert ok and seen[-1].status_code == 429
    for r in ok:
        assert r.headers["RateLimit-Limit"] == "5"
        assert 0 <= int(r.headers["RateLimit-Remaining"]) < 5
        assert 1 <= int(r.headers["RateLimit-Reset"]) <= 60
    remaining = [int(r.headers["RateLimit-Remaining"]) for r in ok]
    assert remaining == sorted(remaining, reverse=True)
    limited = seen[-1]
    assert_error(limited, 429, "RATE_LIMITED")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["RateLimit-Remaining"] == "0" and limited.headers["RateLimit-Limit"] == "5"
    # Another tenant is unaffected; probes are never limited.
    other = api.user()
    other_org = api.org(other)
    assert api.get(f"/v1/orgs/{other_org}/prompts", headers=other.h).status_code == 200
    for _ in range(8):
        assert api.get("/healthz").status_code == 200


def test_rate_limit_per_address_unauthenticated(api_factory):
    api = api_factory(rate_limit_per_minute=3)
    codes = [api.post("/v1/auth/register", json={"email": "nope"}).status_code for _ in range(5)]
    assert codes[:3] == [422, 422, 422] and codes[3:] == [429, 429], codes
    r = api.post("/v1/auth/register", json={"email": "nope"})
    assert_error(r, 429, "RATE_LIMITED")
    assert r.headers["Retry-After"] and r.headers["RateLimit-Limit"] == "3"
    # Refused credentials count against the address too (guessing keys is limited).
    r = api.get("/v1/me", headers={"Authorization": "Bearer pfk_guess_guess"})
    assert r.status_code == 429


def test_security_headers_cors_and_no_store(api_factory):
    api = api_factory(cors_origins=["https://app.example"])
    for r in (api.get("/healthz"), api.get("/v1/me"), api.get("/nope"), api.get("/openapi.json")):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    docs = api.get("/docs")
    assert docs.status_code == 200
    assert "script-src 'self';" in docs.headers["Content-Security-Policy"]  # vendored Swagger UI: no CDN, no inline script
    assert "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]
    login = api.login("nobody@example.com", "wrong password here")
    assert login.headers["Cache-Control"] == "no-store"
    pre = api.client.options("/v1/me", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                                                "Access-Control-Request-Headers": "Authorization"})
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    bad = api.client.options("/v1/me", headers={"Origin": "https://evil.example",
                                                "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in bad.headers


@pytest.mark.parametrize("sent", ["trace-abc-123", None])
def test_request_id_echoed(api, sent):
    r = api.get("/healthz", headers={"X-Request-ID": sent} if sent else {})
    if sent:
        assert r.headers["X-Request-ID"] == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"])
