"""Exceptions. Every error carries a stable `code`: the server's error code for answers from the
registry (with its `message`, `details` and `request_id`), or the same code the server would use
for a local render (`RENDER_VARIABLES_MISMATCH`, `INVALID_TEMPLATE`, ...)."""
from __future__ import annotations

from typing import Any

__all__ = ["PromptForgeError", "ApiError", "RenderError", "TransportError", "ServerUnavailable", "NotModified"]


class PromptForgeError(Exception):
    """Base class. `code` is a stable upper-case string; `details` a JSON object."""

    def __init__(self, code: str, message: str = "", details: dict[str, Any] | None = None, *,
                 request_id: str | None = None, status: int | None = None):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.request_id = request_id
        self.status = status

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, details={self.details!r}, "
                f"request_id={self.request_id!r}, status={self.status!r})")


class ApiError(PromptForgeError):
    """The registry answered with an error (`{"error": {code, message, details}, "request_id"}`)."""

    @property
    def retry_after(self) -> float | None:
        value = self.details.get("retry_after")
        return float(value) if isinstance(value, (int, float)) else None


class ServerUnavailable(ApiError):
    """A 5xx answer (or 429): the registry is there but cannot answer now. The cache keeps serving."""


class TransportError(PromptForgeError):
    """The registry could not be reached (connection refused, timeout, broken stream). code NETWORK_ERROR."""

    def __init__(self, message: str, *, cause: BaseException | None = None):
        super().__init__("NETWORK_ERROR", message, {"exception": type(cause).__name__} if cause else {})
        self.__cause__ = cause


class RenderError(PromptForgeError):
    """A local render failed, with the code (and details) the server's render would answer with:
    RENDER_VARIABLES_MISMATCH, RENDER_TOO_LARGE, INVALID_TEMPLATE, INVALID_TEMPLATE_FORMAT, INVALID_MESSAGES,
    INVALID_VARIABLES."""


class NotModified(Exception):
    """Internal: a revalidation answered 304."""
