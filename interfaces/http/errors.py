"""One error shape for every failure, and the mapping of domain error kinds to HTTP statuses.

    {"error": {"code": "PROMPT_VERSION_CONFLICT", "message": "...", "details": {...}}, "request_id": "..."}

Domain errors keep their stable `code`; the *kind* (subclass) picks the status. Plan limits
(`LimitExceeded`) are 409: the request is valid and authorised but conflicts with the org's
current state (its plan), and changing that state (upgrading, freeing capacity) resolves it.

A 405 lists in `Allow` every method the path serves, across all the routes that share the path
(routing only names the one route it tried). `OPTIONS` on a known path (not a CORS preflight:
CORSMiddleware answers those first) is 204 with that `Allow` plus OPTIONS.
"""
from __future__ import annotations

import logging
from typing import Any

from eventsourcing.persistence import OperationalError as StoreOperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError as SqlOperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

try:  # recent FastAPI keeps each included router as one branch in app.routes: walk their effective routes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI flattens included routes into app.routes
    def iter_route_contexts(routes):  # type: ignore[no-redef]
        return iter(routes)

from domain.errors import Conflict, DomainError, Forbidden, Invalid, LimitExceeded, NotFound, Unauthenticated

log = logging.getLogger("promptforge.http")

STATUS_BY_KIND: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404), (Unauthenticated, 401), (Forbidden, 403), (LimitExceeded, 409), (Conflict, 409), (Invalid, 422),
)
#: Invalid inputs that are about the query string, not the body: 400 rather than 422.
BAD_REQUEST_CODES = frozenset({"INVALID_CURSOR", "INVALID_SORT"})
HTTP_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE", 409: "CONFLICT", 411: "LENGTH_REQUIRED", 412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 422: "VALIDATION_ERROR", 429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    """An HTTP-level refusal raised by the interface itself (auth header, preconditions, ...)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "") or ""


def error_body(code: str, message: str, details: dict[str, Any] | None, request_id: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}, "request_id": request_id}


def error_response(request: Request, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The middleware adds `X-Request-ID` to every response, errors included."""
    return JSONResponse(error_body(code, message, details, request_id_of(request)), status_code=status, headers=headers)


def status_of(exc: DomainError) -> int:
    if isinstance(exc, Invalid) and exc.code in BAD_REQUEST_CODES:
        return 400
    for kind, status in STATUS_BY_KIND:
        if isinstance(exc, kind):
            return status
    return 422


def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    position = exc.details.get("position") if isinstance(exc.details, dict) else None
    if isinstance(position, int) and not isinstance(position, bool):
        # a refusal that still recorded something (a superseded review): read-your-writes as usual
        headers["X-Event-Position"] = str(position)
    return error_response(request, status, exc.code, exc.message, exc.details, headers or None)


def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return error_response(request, exc.status, exc.code, exc.message, exc.details, headers)


def _clean_loc(loc: Any) -> list[Any]:
    return [part if isinstance(part, (str, int)) else str(part) for part in (loc or ())]


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Never echo the offending input back (it may be a password): only where and why."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(request, 400, "MALFORMED_JSON", "request body is not valid JSON")
    cleaned = [{"loc": _clean_loc(e.get("loc")), "msg": str(e.get("msg", ""))[:300], "type": str(e.get("type", ""))}
               for e in errors[:20]]
    if cleaned and all(c["loc"] and c["loc"][0] in ("query", "header", "path", "cookie") for c in cleaned):
        return error_response(request, 400, "INVALID_PARAMETER", "invalid query, path or header parameter",
                              {"errors": cleaned})
    return error_response(request, 422, "VALIDATION_ERROR", "request body failed validation", {"errors": cleaned})


def allowed_methods(request: Request) -> set[str]:
    """Every method some route serves on the request's path (the routes matching it, fully or partially)."""
    probe = {k: v for k, v in request.scope.items() if k not in ("fastapi", "route", "endpoint", "path_params")}
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(probe)[0] is not Match.NONE:
            methods |= set(route_methods)
    return methods


def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code = HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = "no such route"
    if exc.status_code == 405:
        methods = allowed_methods(request)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": ", ".join(sorted(methods | {"OPTIONS"}))})
        if methods:
            headers["Allow"] = ", ".join(sorted(methods))
        message = "method not allowed on this path; see the Allow header"
    return error_response(request, exc.status_code, code, message, headers=headers)


def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("storage unavailable: %s", type(exc).__name__)
    return error_response(request, 503, "STORAGE_UNAVAILABLE", "storage is temporarily unavailable",
                          headers={"Retry-After": "1"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(StoreOperationalError, _unavailable)
    app.add_exception_handler(SqlOperationalError, _unavailable)
