"""The outermost request handling (pure ASGI, no per-request task overhead).

- Request id: a client's `X-Request-ID` when it is short and plain, else a fresh one; echoed
  on every response and handed to every command.
- Body size: refused with 413 from `Content-Length`, or while streaming when it is absent.
- Request targets with control characters (e.g. `%00`) are refused with 400 before routing.
- Anything unexpected becomes a 500 in the standard error shape; the traceback is logged,
  the client only sees the request id.
- One access-log line per request: method, route path, status, duration, request id. Never
  headers, query strings or bodies.
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

from interfaces.http.errors import error_body

log = logging.getLogger("promptforge.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def new_request_id(header: str | None) -> str:
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = new_request_id(headers.get("x-request-id"))
        scope.setdefault("state", {})["request_id"] = rid
        started_at = time.perf_counter()
        status_holder = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["started"] = True
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
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
            route = scope.get("route")
            path = getattr(route, "path", None) or "<unmatched>"
            log.info("%s %s %s %.1fms request_id=%s", scope.get("method"), path, status_holder["status"],
                     (time.perf_counter() - started_at) * 1000, rid)
