"""Domain errors with stable, machine-readable codes.

Interfaces map the error *kind* (the subclass) to a transport status; the `code` is the
stable identifier clients program against.
"""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: a command was refused by an invariant."""

    default_code = "DOMAIN_ERROR"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}


class NotFound(DomainError):
    """The thing does not exist *for this principal* (also used for other tenants' things)."""

    default_code = "NOT_FOUND"


class Conflict(DomainError):
    """The command raced with or contradicts the current state (stale version, duplicate)."""

    default_code = "CONFLICT"


class Forbidden(DomainError):
    """The principal may see the resource but lacks the permission for this command."""

    default_code = "FORBIDDEN"


class Invalid(DomainError):
    """The command's input breaks a rule of the domain (bad name, unknown role, ...)."""

    default_code = "VALIDATION_ERROR"


class Unauthenticated(DomainError):
    """Credentials are missing, wrong, expired or revoked."""

    default_code = "UNAUTHENTICATED"


class LimitExceeded(DomainError):
    """The organisation's plan does not allow more of this resource."""

    default_code = "PLAN_LIMIT_EXCEEDED"
