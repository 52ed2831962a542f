"""JSON logs (stdlib logging) with the request context: request id, user id, org id, API key id.

`configure_logging(level)` installs one JSON handler on the root logger, idempotently, and routes
uvicorn's loggers through it (its own access log is off: the app writes one access line per
request). The request context lives in a contextvar set by the HTTP middleware; the dependencies
fill in who the caller is once authenticated. Log lines never carry headers, bodies or query strings.
"""
from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from datetime import datetime, timezone
from typing import Any

#: Per-request context (a fresh dict per request, mutated in place by the auth dependencies, so
#: values set in the thread pool are visible to the middleware's access line).
request_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("pf_request", default=None)
CONTEXT_FIELDS = ("request_id", "user_id", "org_id", "api_key_id")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
_HANDLER_MARK = "_promptforge_json"


def bind(**values: Any) -> None:
    """Add fields (user_id, org_id, ...) to the current request's log context."""
    ctx = request_context.get()
    if ctx is not None:
        ctx.update({k: str(v) for k, v in values.items() if v is not None})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = request_context.get() or {}
        for key in CONTEXT_FIELDS:
            if key in ctx:
                out[key] = ctx[key]
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", stream=None) -> logging.Handler:
    """Install the JSON handler on the root logger once per process (later calls only adjust the level)."""
    root = logging.getLogger()
    level_no = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(level_no, int):
        level_no = logging.INFO
    handler = next((h for h in root.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter())
        setattr(handler, _HANDLER_MARK, True)
        for other in [h for h in root.handlers if type(h) is logging.StreamHandler]:
            root.removeHandler(other)  # a basicConfig text handler would print every line twice
        root.addHandler(handler)
    root.setLevel(level_no)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True  # the app's own access line has the route template and request id
    return handler
