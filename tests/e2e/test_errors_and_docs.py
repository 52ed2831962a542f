"""The error shape on the unexpected paths (500, storage outage), and the OpenAPI docs."""
from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from interfaces.http import error_codes
from tests.e2e.support import assert_error


def test_unexpected_exceptions_are_500_in_the_error_shape(api, monkeypatch, caplog):
    owner = api.user()
    org = api.org(owner)

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom with internals")

    monkeypatch.setattr(api.container.catalogue, "list", boom)
    with caplog.at_level(logging.ERROR, logger="promptforge.http"):
        r = api.get(f"/v1/orgs/{org}/prompts", headers={**owner.h, "X-Request-ID": "trace-me-1"})
    body = assert_error(r, 500, "INTERNAL_ERROR")
    assert body["request_id"] == "trace-me-1" and "kaboom" not in r.text
    assert any("trace-me-1" in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_storage_outage_is_503(api, monkeypatch):
    owner = api.user()
    org = api.org(owner)

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(api.container.catalogue, "list", down)
    r = api.get(f"/v1/orgs/{org}/prompts", headers=owner.h)
    assert_error(r, 503, "STORAGE_UNAVAILABLE")
    assert r.headers["retry-after"] == "1" and "connection refused" not in r.text


def test_openapi_documents_every_route_with_examples_and_the_error_shape(api):
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = api.get("/openapi.json").json()
    assert all(path.startswith("/v1/") for path in spec["paths"])
    schemas = spec["components"]["schemas"]
    for name in ("PromptCreate", "RegisterRequest", "LabelMove", "ApiKeyCreate", "MemberAdd", "RenderRequest"):
        assert schemas[name].get("examples"), name
    assert "ErrorResponse" in schemas
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    fetch = spec["paths"]["/v1/orgs/{org_id}/prompts/by-name/{name}"]["get"]
    assert {p["name"] for p in fetch["parameters"]} >= {"label", "version", "as_of", "min_position"}
    # create_app serves the completed document (interfaces.http.openapi.customise_openapi): error
    # responses shared as components, every code, the statuses and headers that depend on the route
    assert fetch["responses"]["404"] == {"$ref": "#/components/responses/Error404"}
    not_found = spec["components"]["responses"]["Error404"]
    assert not_found["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    assert {(e["status"], e["code"]) for e in spec["x-error-codes"]} == {
        (e.status, e.code) for e in error_codes.ERROR_CODES}
    assert {"304", "405", "429", "500"} <= set(fetch["responses"])
    assert "ETag" in fetch["responses"]["200"]["headers"]


def test_docs_can_be_switched_off(api_factory):
    api = api_factory(docs_enabled=False)
    assert_error(api.get("/docs"), 404)
    assert_error(api.get("/openapi.json"), 404)
