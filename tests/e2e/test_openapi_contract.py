"""The OpenAPI document says what the API really answers: headers, conditional and error statuses,
the one error shape with its codes; and real responses carry only headers it documents."""
from __future__ import annotations

from typing import Any

import pytest
from fastapi.openapi.models import OpenAPI

from interfaces.http import error_codes
from interfaces.http.openapi import EVERYWHERE, customise_openapi

COMMANDS = {"post", "put", "patch", "delete"}
P = "/v1/orgs/{org_id}/prompts"
IDEMPOTENT = {("post", "/v1/orgs"), ("post", P), ("post", "/v1/orgs/{org_id}/api-keys"),
              ("post", P + "/{prompt_id}/versions"), ("post", "/v1/orgs/{org_id}/members"),
              ("post", "/v1/orgs/{org_id}/webhooks")}
WITH_ETAG = {("get", P + "/{prompt_id}"), ("get", P + "/by-name/{name}"), ("get", P + "/{prompt_id}/versions/{number}"),
             ("post", P), ("post", P + "/{prompt_id}/versions")}
CONDITIONAL_GETS = {("get", P + "/by-name/{name}"), ("get", P + "/{prompt_id}/versions/{number}")}
#: POSTs that record no event, hence no position (a redelivery is logged in the delivery log).
QUERIES_BY_POST = {("post", P + "/search"), ("post", P + "/{prompt_id}/render"),
                   ("post", "/v1/orgs/{org_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")}


@pytest.fixture(scope="module")
def spec(module_api) -> dict[str, Any]:
    customise_openapi(module_api.app)
    customise_openapi(module_api.app)  # idempotent
    served = module_api.get("/openapi.json").json()
    assert served == module_api.app.openapi()
    return served


def operations(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def responses_of(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {status: resolve(spec, response) for status, response in operation["responses"].items()}


def headers_of(spec: dict[str, Any], response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: resolve(spec, header) for name, header in resolve(spec, response).get("headers", {}).items()}


def header_params(operation: dict[str, Any]) -> set[str]:
    return {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}


def test_the_document_is_valid_openapi_and_every_ref_resolves(spec):
    OpenAPI.model_validate(spec)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target: Any = spec
                for part in ref.removeprefix("#/").split("/"):
                    target = target[part]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert spec["paths"] and all(path.startswith("/v1/") for path in spec["paths"])


def test_every_response_documents_the_request_id_and_rate_limit_headers(spec):
    for method, path, operation in operations(spec):
        for status, response in responses_of(spec, operation).items():
            headers = headers_of(spec, response)
            assert headers["X-Request-ID"]["required"] is True, (method, path, status)
            assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(headers), (method, path, status)


def test_error_responses_use_the_error_shape_and_list_their_codes(spec):
    for method, path, operation in operations(spec):
        responses = responses_of(spec, operation)
        statuses = {int(s) for s in responses}
        assert set(EVERYWHERE) <= statuses, (method, path)
        assert (413 in statuses) == ("requestBody" in operation), (method, path)
        assert (412 in statuses) == ("if-match" in header_params(operation)), (method, path)
        for status, response in responses.items():
            if int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
            codes = [e.code for e in error_codes.codes_for(int(status))]
            assert response["x-error-codes"] == codes, (method, path, status)
            assert all(f"`{code}`" in response["description"] for code in codes), (method, path, status)
            assert response["content"]["application/json"]["example"]["error"]["code"] in codes
            headers = headers_of(spec, response)
            if int(status) in (429, 503):
                assert headers["Retry-After"]["required"] is True, (method, path, status)
            if int(status) == 401:
                assert "WWW-Authenticate" in headers
            if int(status) == 405:
                assert "Allow" in headers
    # a route's own description of a status is kept as the lead of the shared one
    for path, status in ((P + "/{prompt_id}/versions", "412"), ("/v1/auth/login", "429")):
        route = spec["paths"][path]["post"]["responses"][status]
        shared = error_codes.describe(int(status))
        assert route["description"].endswith("\n\n" + shared) and len(route["description"]) > len(shared) + 10
    # the shared error responses keep the document small
    assert spec["paths"]["/v1/me"]["get"]["responses"]["404"] == {"$ref": "#/components/responses/Error404"}


def test_conditional_gets_document_304_with_the_etag(spec):
    with_304 = {(m, p) for m, p, op in operations(spec) if "304" in op["responses"]}
    with_if_none_match = {(m, p) for m, p, op in operations(spec) if "if-none-match" in header_params(op)}
    assert with_304 == with_if_none_match == CONDITIONAL_GETS
    for method, path in CONDITIONAL_GETS:
        response = resolve(spec, spec["paths"][path][method]["responses"]["304"])
        assert "content" not in response and "ETag" in headers_of(spec, response)


def test_success_headers_follow_the_routes(spec):
    positions, replays, etags = set(), set(), set()
    for method, path, operation in operations(spec):
        for status, response in responses_of(spec, operation).items():
            if status.startswith("2"):
                headers = headers_of(spec, response)
                if "X-Event-Position" in headers:
                    assert headers["X-Event-Position"]["required"] is True
                    positions.add((method, path))
                if "Idempotency-Replayed" in headers:
                    replays.add((method, path))
                if "ETag" in headers:
                    etags.add((method, path))
    commands = {(m, p) for m, p, _ in operations(spec) if m in COMMANDS} - QUERIES_BY_POST
    assert positions == commands and len(commands) > 15
    assert replays == IDEMPOTENT
    assert etags == WITH_ETAG


def _check(spec: dict[str, Any], response, method: str, path: str) -> None:
    """The response's status is documented for the operation; each header it carries is documented
    there, and each documented required header is present."""
    documented = spec["paths"][path][method]["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: {response.status_code} is not documented"
    documented = resolve(spec, documented)
    headers = headers_of(spec, documented)
    tracked = ("ETag", "X-Event-Position", "Idempotency-Replayed", "Retry-After", "RateLimit-Limit",
               "RateLimit-Remaining", "RateLimit-Reset", "X-Request-ID", "WWW-Authenticate", "Allow")
    for name in tracked:
        if name.lower() in response.headers:
            assert name in headers, f"{method} {path} {response.status_code}: {name} sent but not documented"
        else:
            assert not headers.get(name, {}).get("required"), \
                f"{method} {path} {response.status_code}: {name} documented as required but not sent"


def test_real_responses_carry_the_documented_headers(api):
    customise_openapi(api.app)
    spec = api.get("/openapi.json").json()
    owner = api.user("owner")
    check = lambda r, method, path: _check(spec, r, method, path)  # noqa: E731

    create_org = lambda: api.post("/v1/orgs", json={"name": "Acme"},  # noqa: E731
                                  headers={**owner.h, "Idempotency-Key": "org-1"})
    r = create_org()
    check(r, "post", "/v1/orgs")
    org = r.json()["id"]
    r = create_org()
    assert r.headers.get("idempotency-replayed") == "true"
    check(r, "post", "/v1/orgs")

    r = api.post(f"/v1/orgs/{org}/prompts", json={"name": "greet", "template": "Hello {{name}}"}, headers=owner.h)
    check(r, "post", P)
    pid = r.json()["id"]
    r = api.q(f"/v1/orgs/{org}/prompts/{pid}", owner)
    check(r, "get", P + "/{prompt_id}")
    etag = r.headers["etag"]
    for url, path in ((f"/v1/orgs/{org}/prompts/by-name/greet", P + "/by-name/{name}"),
                      (f"/v1/orgs/{org}/prompts/{pid}/versions/1", P + "/{prompt_id}/versions/{number}")):
        r = api.q(url, owner)
        check(r, "get", path)
        r = api.q(url, owner, headers={"If-None-Match": r.headers["etag"]})
        assert r.status_code == 304
        check(r, "get", path)

    revise = lambda: api.post(f"/v1/orgs/{org}/prompts/{pid}/versions", json={"template": "Hi {{name}}"},  # noqa: E731
                              headers={**owner.h, "If-Match": etag})
    r = revise()
    check(r, "post", P + "/{prompt_id}/versions")
    r = revise()
    assert r.status_code == 412
    check(r, "post", P + "/{prompt_id}/versions")

    labels = f"/v1/orgs/{org}/prompts/{pid}/labels/production"
    check(api.put(labels, json={"version": 2, "expected_version": 0}, headers=owner.h), "put",
          P + "/{prompt_id}/labels/{label}")
    check(api.delete(labels, headers=owner.h), "delete", P + "/{prompt_id}/labels/{label}")
    r = api.search(org, owner, {"query": "hello", "mode": "keyword"})
    assert r.status_code == 200 and "x-event-position" not in r.headers
    check(r, "post", P + "/search")
    r = api.post(f"/v1/orgs/{org}/prompts/{pid}/render", json={"variables": {"name": "Ada"}}, headers=owner.h)
    check(r, "post", P + "/{prompt_id}/render")

    r = api.post(f"/v1/orgs/{org}/api-keys", json={"name": "k", "permissions": ["prompts:read"]}, headers=owner.h)
    check(r, "post", "/v1/orgs/{org_id}/api-keys")
    key = f"/v1/orgs/{org}/api-keys/{r.json()['id']}"
    check(api.delete(key, headers=owner.h), "delete", "/v1/orgs/{org_id}/api-keys/{key_id}")
    r = api.delete(key, headers=owner.h)
    assert r.status_code == 409
    check(r, "delete", "/v1/orgs/{org_id}/api-keys/{key_id}")

    check(api.patch(f"/v1/orgs/{org}", json={}, headers=owner.h), "patch", "/v1/orgs/{org_id}")
    check(api.get("/v1/me"), "get", "/v1/me")
    check(api.q(f"/v1/orgs/{org}/prompts/{'0' * 32}", owner), "get", P + "/{prompt_id}")
    r = api.delete("/v1/auth/register")
    assert r.status_code == 405
    check(r, "post", "/v1/auth/register")


def test_rate_limited_responses_match_the_document(api_factory):
    api = api_factory(rate_limit_per_minute=2)
    customise_openapi(api.app)
    spec = api.get("/openapi.json").json()
    responses = [api.post("/v1/auth/register", json={"email": "nope"}) for _ in range(3)]
    assert [r.status_code for r in responses] == [422, 422, 429]
    for r in responses:
        _check(spec, r, "post", "/v1/auth/register")
