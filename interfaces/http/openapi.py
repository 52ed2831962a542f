"""The OpenAPI document: FastAPI's, completed with what the routes' signatures cannot say.

`customise_openapi(app)` installs `app.openapi`, which generates the document once (cached in
`app.openapi_schema`) and adds, derived from each route rather than listed per route:

- response headers: `X-Request-ID` and `RateLimit-*` on every /v1 response; `X-Event-Position`
  on the success response of every command (POST/PUT/PATCH/DELETE answering a `position`);
  `Idempotency-Replayed` where the route takes an `Idempotency-Key` header; `ETag` where the
  endpoint sets one; `Retry-After` on 429 and 503, `WWW-Authenticate` on 401, `Allow` on 405;
- responses: 304 where the route takes `If-None-Match`, 412 where it takes `If-Match`, 413 where
  it has a body, 400/404/405/429/500/503 everywhere, every error response in the one error shape
  (shared as `components/responses/ErrorNNN`, inline where the route adds its own lead);
- the error codes of each status (interfaces.http.error_codes), in the response's description and
  as `x-error-codes`, and the whole catalogue as the document's `x-error-codes` and in its description.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from interfaces.http import error_codes
from interfaces.http.schemas.common import ErrorResponse

ERROR_REF = "#/components/schemas/ErrorResponse"
COMMAND_METHODS = frozenset({"post", "put", "patch", "delete"})
#: Error statuses every /v1 operation can answer (bad URL or Content-Length, unknown id or route,
#: another method, rate limit, unexpected failure, storage outage / read-model lag).
EVERYWHERE = (400, 404, 405, 429, 500, 503)
#: On every /v1 response.
COMMON_HEADERS = ("X-Request-ID", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request id: the client's `X-Request-ID` when it is 1-128 of `A-Za-z0-9._:-`, else a "
                       "generated one. Also in error bodies (`request_id`), the logs and the audit log.",
        "required": True, "schema": {"type": "string"},
    },
    "RateLimit-Limit": {
        "description": "Requests per minute of the most constrained rate-limit bucket of this request "
                       "(sent once the request was counted).",
        "schema": {"type": "integer"},
    },
    "RateLimit-Remaining": {"description": "Requests left in the current window of that bucket.",
                            "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "Seconds until that window resets.", "schema": {"type": "integer"}},
    "X-Event-Position": {
        "description": "Log position of the command's last event (also the body's `position`): pass it as "
                       "`min_position` (or `X-Min-Position`) to a query to read this write.",
        "required": True, "schema": {"type": "integer"},
    },
    "Idempotency-Replayed": {
        "description": "`true` when this answers a retry with the same `Idempotency-Key` and body: nothing was "
                       "done again. Absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "ETag": {
        "description": '`"<prompt_id>:<version>"`: use it as `If-None-Match` (304 when unchanged) or, from the '
                       "prompt or a revision, as `If-Match` when revising. Not sent on `as_of` answers.",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "required": True,
                    "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "`Bearer`", "required": True, "schema": {"type": "string"}},
    "Allow": {"description": "The methods this path accepts.", "required": True, "schema": {"type": "string"}},
}
#: Headers of error responses, by status.
ERROR_HEADERS = {401: ("WWW-Authenticate",), 405: ("Allow",), 429: ("Retry-After",), 503: ("Retry-After",)}
#: FastAPI's placeholder descriptions, replaced rather than kept as a route-specific lead.
_GENERIC = {"", "Additional Response", "Successful Response", "Validation Error"}


def customise_openapi(app: FastAPI) -> None:
    """Install the customised `app.openapi` (idempotent: calling it again regenerates the same document)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version, summary=app.summary,
                description=app.description, terms_of_service=app.terms_of_service, contact=app.contact,
                license_info=app.license_info, routes=app.routes, webhooks=app.webhooks.routes,
                tags=app.openapi_tags, servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
                **({"external_docs": docs} if (docs := getattr(app, "openapi_external_docs", None)) else {}),
            )
            complete(schema, endpoints(app))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi_schema = None
    app.openapi = openapi  # type: ignore[method-assign]


def endpoints(app: FastAPI) -> dict[tuple[str, str], Callable[..., Any]]:
    """(path template, lower-case method) -> endpoint function, for every route in the schema."""
    found: dict[tuple[str, str], Callable[..., Any]] = {}
    for route in _api_routes(app):
        if getattr(route, "include_in_schema", False):
            for method in route.methods or ():
                found[(route.path_format, method.lower())] = route.endpoint
    return found


def _api_routes(app: FastAPI) -> Iterator[Any]:
    try:  # FastAPI >= 0.160: included routers are kept as route contexts
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI: app.routes holds the APIRoutes
        yield from (r for r in app.routes if isinstance(r, APIRoute))
        return
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def sets_etag(endpoint: Callable[..., Any] | None) -> bool:
    """The endpoints that answer an ETag set it by name; read from their source."""
    if endpoint is None:
        return False
    try:
        return '"ETag"' in inspect.getsource(endpoint)
    except (OSError, TypeError):  # pragma: no cover - no source (compiled, builtin)
        return False


def complete(schema: dict[str, Any], route_endpoints: dict[tuple[str, str], Callable[..., Any]]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    if "ErrorResponse" not in schemas:  # pragma: no cover - every router declares ERRORS
        _add_model(schemas, ErrorResponse)
    components["headers"] = {**components.get("headers", {}), **HEADERS}
    components["responses"] = {**components.get("responses", {}),
                               **{_response_name(s): _error_response(s) for s in error_codes.STATUSES}}
    for path, item in schema.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                _complete_operation(schema, method, operation, route_endpoints.get((path, method)))
    schema["x-error-codes"] = [{"status": e.status, "code": e.code, "meaning": e.meaning}
                               for e in error_codes.ERROR_CODES]
    info = schema.setdefault("info", {})
    info["description"] = (info.get("description") or "").rstrip() + "\n\n" + _catalogue()


def _complete_operation(schema: dict[str, Any], method: str, operation: dict[str, Any],
                        endpoint: Callable[..., Any] | None) -> None:
    responses: dict[str, Any] = operation["responses"]
    headers_in = {p["name"].lower() for p in operation.get("parameters", []) if p.get("in") == "header"}
    statuses = set(EVERYWHERE)
    if "requestBody" in operation:
        statuses.add(413)
    if "if-match" in headers_in:
        statuses.add(412)
    statuses |= {int(s) for s in responses if s.isdigit() and int(s) >= 400}
    for status in statuses:
        lead = (responses.get(str(status), {}).get("description") or "").strip()
        if lead in _GENERIC or lead in (error_codes.summary(status), error_codes.describe(status)):
            responses[str(status)] = {"$ref": f"#/components/responses/{_response_name(status)}"}
        else:  # a route-specific lead, e.g. login's 429: kept above the shared description
            responses[str(status)] = _error_response(status, lead)
    if "if-none-match" in headers_in:
        responses["304"] = {
            "description": "Not modified: `If-None-Match` matched the current `ETag`. No body.",
            "headers": _refs("ETag", *COMMON_HEADERS),
        }
    etag = sets_etag(endpoint)
    for status, response in responses.items():
        if status.startswith("2"):
            names = list(COMMON_HEADERS)
            if method in COMMAND_METHODS and "position" in _properties(schema, response):
                names.append("X-Event-Position")
            if "idempotency-key" in headers_in:
                names.append("Idempotency-Replayed")
            if etag:
                names.append("ETag")
            response["headers"] = {**response.get("headers", {}), **_refs(*names)}
    operation["responses"] = dict(sorted(responses.items()))


def _response_name(status: int) -> str:
    return f"Error{status}"


def _error_response(status: int, lead: str = "") -> dict[str, Any]:
    """An error response in the one shape, its codes listed (shared as components/responses/ErrorNNN)."""
    description = error_codes.describe(status)
    codes = error_codes.codes_for(status)
    example = {"error": {"code": codes[0].code, "message": codes[0].meaning, "details": {}},
               "request_id": "9f1c2a0e4b6d4c1f8e2a7b3c5d6e7f80"}
    return {
        "description": f"{lead}\n\n{description}" if lead else description,
        "headers": _refs(*COMMON_HEADERS, *ERROR_HEADERS.get(status, ())),
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}, "example": example}},
        "x-error-codes": [e.code for e in codes],
    }


def _refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _properties(schema: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    body = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = body.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        body = schema["components"]["schemas"].get(ref.rsplit("/", 1)[1], {})
    return body.get("properties", {})


def _add_model(schemas: dict[str, Any], model: Any) -> None:  # pragma: no cover - see complete()
    generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(generated.pop("$defs", {}))
    schemas[model.__name__] = generated


def _catalogue() -> str:
    """The error codes by status, as a Markdown table for the document's description."""
    lines = ["**Error codes** (`error.code`, stable; clients program against these):", "",
             "| status | codes |", "|---|---|"]
    for status in error_codes.STATUSES:
        lines.append(f"| {status} | " + ", ".join(f"`{e.code}`" for e in error_codes.codes_for(status)) + " |")
    return "\n".join(lines)
