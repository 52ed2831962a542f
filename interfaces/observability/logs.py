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
import math
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
_SIMPLE = (str, int, float, bool, type(None))
#: `json.dumps(out, ensure_ascii=False, default=str)`, its encoder made once.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
#: (whole second, its ISO 8601 text up to the seconds) of the last line formatted.
_second: tuple[int, str] = (-1, "")


def timestamp(created: float) -> str:
    """`datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")`, the
    date and time formatted once per second: microseconds rounded half-even as datetime does,
    then truncated to milliseconds."""
    global _second
    frac, whole = math.modf(created)
    micros = round(frac * 1e6)
    if micros < 0:
        return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
    if micros >= 1_000_000:
        whole += 1.0
        micros -= 1_000_000
    second, text = _second
    if second != whole:
        text = datetime.fromtimestamp(whole, timezone.utc).isoformat(timespec="seconds")[:-6]
        _second = (int(whole), text)
    return f"{text}.{micros // 1000:03d}+00:00"


def bind(**values: Any) -> None:
    """Add fields (user_id, org_id, ...) to the current request's log context."""
    ctx = request_context.get()
    if ctx is not None:
        ctx.update({k: str(v) for k, v in values.items() if v is not None})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": timestamp(record.created),
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
                out[key] = value if isinstance(value, _SIMPLE) else str(value)
        if record.exc_info:
            out["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return _encode(out)


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
