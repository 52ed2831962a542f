"""Langfuse's error shape for the compatibility routes: `{"message": "...", "error": "<ErrorName>"}`.

Langfuse's public API answers failures as `{"message", "error"}` where `error` names the error
class (`UnauthorizedError`, `LangfuseNotFoundError`, ...), and request validation failures as
`{"message": "Invalid request data", "error": [issues]}`. The compatibility routes answer the same,
whatever raised: PromptForge's domain errors keep their stable code in the message (`... (LABEL_PROTECTED)`),
so a failure is still greppable, and nothing a client sent is echoed back.

`LangfuseRoute` is the routes' class: it turns every exception of the route (dependencies, body
parsing, the endpoint) into that shape. The middleware's refusals before routing (a body over the
limit by its Content-Length, control characters in the URL) keep PromptForge's shape.
"""
from __future__ import annotations

import logging
from typing import Any

from eventsourcing.persistence import OperationalError as StoreOperationalError
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError as SqlOperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from domain.errors import DomainError
from interfaces.http.errors import ApiError, status_of

log = logging.getLogger("promptforge.http")

#: Langfuse's error class names (packages/shared/src/errors), by HTTP status.
NAMES = {400: "InvalidRequestError", 401: "UnauthorizedError", 403: "ForbiddenError", 404: "LangfuseNotFoundError",
         405: "MethodNotAllowedError", 409: "LangfuseConflictError", 413: "PayloadTooLargeError",
         429: "RateLimitError", 500: "InternalServerError", 503: "ServiceUnavailableError"}
#: WWW-Authenticate on every 401: the credentials these routes take.
BASIC_CHALLENGE = 'Basic realm="PromptForge (Langfuse-compatible API)"'


class LangfuseError(Exception):
    """A refusal of the compatibility layer itself (a request Langfuse's API would refuse)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def body(status: int, message: str) -> dict[str, Any]:
    return {"message": message, "error": NAMES.get(status, "InternalServerError" if status >= 500 else "Error")}


def answer(status: int, message: str, headers: dict[str, str] | None = None, error: Any = None) -> JSONResponse:
    content = body(status, message) if error is None else {"message": message, "error": error}
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", BASIC_CHALLENGE)
    return JSONResponse(content, status_code=status, headers=headers)


def _status(exc: DomainError) -> int:
    """PromptForge's status for the error kind, with Langfuse's 400 for invalid input (it has no 422)."""
    status = status_of(exc)
    return 400 if status == 422 else status


def response_for(request: Request, exc: Exception) -> Response:
    if isinstance(exc, LangfuseError):
        return answer(exc.status, exc.message, exc.headers)
    if isinstance(exc, DomainError):
        return answer(_status(exc), f"{exc.message} ({exc.code})")
    if isinstance(exc, ApiError):
        status = 400 if exc.status == 422 else exc.status
        return answer(status, f"{exc.message} ({exc.code})", exc.headers)
    if isinstance(exc, RequestValidationError):
        issues = [{"path": [p for p in e.get("loc", ()) if isinstance(p, (str, int))],
                   "message": str(e.get("msg", ""))[:300], "code": str(e.get("type", ""))}
                  for e in list(exc.errors())[:20]]
        return answer(400, "Invalid request data", error=issues)
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else NAMES.get(exc.status_code, "error")
        return answer(exc.status_code, detail, dict(exc.headers or {}))
    if isinstance(exc, (StoreOperationalError, SqlOperationalError)):
        log.warning("storage unavailable: %s", type(exc).__name__)
        return answer(503, "storage is temporarily unavailable", {"Retry-After": "1"})
    log.exception("unhandled error in the Langfuse-compatible API (request_id=%s)",
                  getattr(request.state, "request_id", ""))
    return answer(500, "internal error; quote the X-Request-ID header when reporting it")


class LangfuseRoute(APIRoute):
    """An APIRoute whose every failure is answered in Langfuse's error shape."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure gets the Langfuse shape (500s logged)
                return response_for(request, exc)

        return route_handler
