"""Langfuse credentials over PromptForge API keys: HTTP Basic, username = the key's visible prefix
(`pfk_<first 8 hex of its id>`, Langfuse's "public key"), password = the raw key (the "secret key").

The key's organisation is the Langfuse *project*: there is nothing else to name. The key is checked
against aggregate state as of the event log's head on every request (adr/0020: a revocation applies
at once) and what it may do is the access policy's answer (application.policy: its own permissions ∩
what its issuer may do now), as on `/v1`. Rate limits as on `/v1`: refused credentials count against the client address, accepted ones
against the key and then the organisation.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from uuid import UUID

from fastapi import Request

from application import Principal
from application.policy import Grant
from application.request_access import RequestAccess
from application.security import key_prefix, looks_like_api_key
from domain.errors import Unauthenticated
from domain.permissions import Permission
from interfaces.http import ratelimit
from interfaces.http.deps import client_address
from interfaces.http.security import MAX_TOKEN_CHARS
from interfaces.observability.logs import bind

HOW = "use HTTP Basic auth: username = the API key's prefix (pfk_...), password = the API key"


@dataclass(frozen=True)
class Project:
    """The caller inside its key's organisation (the Langfuse project)."""

    principal: Principal
    org_id: UUID
    grant: Grant
    #: The request's check of the log head, passed to the commands and reads it makes (BaseApp.authorise).
    head: int | None = None


def project(request: Request, permission: Permission | None = None) -> Project:
    """Authenticate, rate-limit and authorise (403 without `permission`) the request's API key."""
    limiter: ratelimit.RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    access = request.app.state.container.app.request_access()  # one check of the log head
    try:
        principal = _verify(request, access)
    except Unauthenticated:
        if limiter is not None:
            ratelimit.apply(request.state, limiter, "addr", client_address(request))
        raise
    org_id = principal.key_org_id
    bind(api_key_id=principal.api_key_id, org_id=org_id)
    if limiter is not None:
        ratelimit.apply(request.state, limiter, "key", str(principal.api_key_id))
    grant = access.grant(principal, org_id, permission)
    if limiter is not None:
        ratelimit.apply(request.state, limiter, "org", str(org_id))
    return Project(principal, org_id, grant, access.head)


def _verify(request: Request, access: RequestAccess) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated(f"missing credentials: {HOW}", code="UNAUTHENTICATED")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "basic" or not value or len(value) > 2 * MAX_TOKEN_CHARS:
        raise Unauthenticated(f"malformed Authorization header: {HOW}", code="INVALID_TOKEN")
    try:
        username, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated(f"malformed Authorization header: {HOW}", code="INVALID_TOKEN") from None
    if not sep or not looks_like_api_key(password):
        raise Unauthenticated(f"invalid API key: {HOW}", code="INVALID_API_KEY")
    principal = access.api_key(password)
    if not hmac.compare_digest(username.encode(), key_prefix(principal.api_key_id).encode()):
        raise Unauthenticated(f"the username is not this API key's prefix: {HOW}", code="INVALID_API_KEY")
    return principal
