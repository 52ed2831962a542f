"""The outermost request handling (pure ASGI, no per-request task overhead).

- Request id: a client's `X-Request-ID` when it is short and plain, else a fresh one; echoed
  on every response and handed to every command.
- Body size: refused with 413 from `Content-Length`, or while streaming when it is absent.
- Request targets with control characters (e.g. `%00`) are refused with 400 before routing.
- Anything unexpected becomes a 500 in the standard error shape; the traceback is logged,
  the client only sees the request id.
- One access-log line per request (JSON fields: method, route template, status, duration,
  request id, user/org/API key ids). Never headers, query strings or bodies.
- Metrics: `promptforge_http_requests_total` / `..._request_duration_seconds` labelled with the
  route TEMPLATE (`/v1/orgs/{org_id}/prompts`), `<unmatched>` for unknown paths.
- Security headers on every response (nosniff, DENY framing, no referrer, a restrictive CSP; the
  Swagger UI page gets one that allows its vendored assets from 'self' and nothing external, with no
  inline script), `Cache-Control: no-store` on `/v1/auth/*`.
- Rate limits: requests without credentials are counted per client address here; authenticated
  ones per key/user and per org in the dependencies (interfaces.http.ratelimit). The quota of the
  most constrained bucket is sent as `RateLimit-*` headers.
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from urllib.parse import unquote

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interfaces.http import ratelimit
from interfaces.http.docs import DOCS_PATH
from interfaces.http.errors import ApiError, error_body
from interfaces.observability.logs import request_context

log = logging.getLogger("promptforge.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
STRICT_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: The Swagger UI page (interfaces.http.docs): its scripts, stylesheet and icon are vendored files
#: under /docs/assets, it fetches /openapi.json and "try it out" calls from the same origin. Swagger UI
#: sets style attributes (hence 'unsafe-inline' for styles only) and uses data: images in its CSS.
DOCS_CSP = (b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            b"font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
            b"form-action 'self'")
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"))


def new_request_id(header: str | None) -> str:
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def access_line(method: str, route: str, status: int, seconds: float, rid: str) -> None:
    """The request's access-log line: `log.info(...)` as it was, without `Logger.findCaller`'s walk
    up the stack (a frame walk per request): the record names this function as where it was made."""
    if log.isEnabledFor(logging.INFO):
        log.handle(log.makeRecord(
            log.name, logging.INFO, _ACCESS_CODE.co_filename, _ACCESS_CODE.co_firstlineno,
            "%s %s %s %.1fms request_id=%s", (method, route, status, seconds * 1000, rid), None, "access_line",
            {"method": method, "route": route, "status": status, "duration_ms": round(seconds * 1000, 2)}))


_ACCESS_CODE = access_line.__code__


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics=None, limiter: ratelimit.RateLimiter | None = None,
                 docs_paths: tuple[str, ...] = (DOCS_PATH,)):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.limiter = limiter
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = new_request_id(headers.get("x-request-id"))
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        context = {"request_id": rid}
        context_token = request_context.set(context)
        started_at = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        path = scope.get("path", "")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["started"] = True
                status_holder["status"] = message["status"]
                out = list(message.get("headers", []))
                present = {k.lower() for k, _ in out}
                out.append((b"x-request-id", rid.encode()))
                for name, value in SECURITY_HEADERS:
                    if name not in present:
                        out.append((name, value))
                if b"content-security-policy" not in present:
                    out.append((b"content-security-policy", DOCS_CSP if path in self.docs_paths else STRICT_CSP))
                if path.startswith("/v1/auth/") and b"cache-control" not in present:
                    out.append((b"cache-control", b"no-store"))
                quota = state.get(ratelimit.STATE_KEY)
                if quota is not None and b"ratelimit-limit" not in present:
                    out.extend((k.lower().encode(), v.encode()) for k, v in quota.headers().items())
                message["headers"] = out
            await send(message)

        async def reply(status: int, code: str, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
            body = json.dumps(error_body(code, message, {}, rid)).encode()
            await send_with_id({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]})
            await send_with_id({"type": "http.response.body", "body": body})

        try:
            target = scope.get("path", "") + "?" + unquote(scope.get("query_string", b"").decode("latin-1"))
            if _CONTROL.search(target):
                await reply(400, "INVALID_REQUEST_TARGET", "control characters are not allowed in the URL")
                return
            length = headers.get("content-length")
            if length is not None:
                if not length.isdigit():
                    await reply(400, "BAD_REQUEST", "invalid Content-Length")
                    return
                if int(length) > self.max_body_bytes:
                    await reply(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {self.max_body_bytes} bytes",
                                [(b"connection", b"close")])
                    return
            if (self.limiter is not None and "authorization" not in headers and path.startswith("/v1/")
                    and path not in ratelimit.EXEMPT_PATHS):
                client = scope.get("client")
                try:  # counted on the loop (async Redis): a blocking call here would stall every request
                    ratelimit.record(state, await self.limiter.hit_async("addr", client[0] if client else "unknown"))
                except ApiError as exc:
                    await reply(429, exc.code, exc.message,
                                [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()])
                    return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise HTTPException(413, f"request body exceeds {self.max_body_bytes} bytes")
                return message

            await self.app(scope, limited_receive, send_with_id)
        except Exception:
            log.exception("unhandled error (request_id=%s)", rid)
            if not status_holder["started"]:
                await reply(500, "INTERNAL_ERROR", "internal error; quote the request id when reporting it")
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            seconds = time.perf_counter() - started_at
            method = scope.get("method", "")
            if self.metrics is not None:
                self.metrics.observe_http(method, route, status_holder["status"], seconds)
            access_line(method, route, status_holder["status"], seconds, rid)
            request_context.reset(context_token)
