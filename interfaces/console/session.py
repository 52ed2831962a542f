"""The console's session cookie, CSRF protection and the dependencies every page declares.

- **Session**: signing in is the application's `login` (a normal Session aggregate, like
  `POST /v1/auth/login`). The cookie carries `<user id>.<session id>.<issued at>` signed with a key
  derived from the JWT secret (HMAC-SHA256); every request checks the session against aggregate
  state as of the event log's head (`request_access`, adr/0020: strongly consistent), so signing out,
  "log out everywhere" and a password change end the console session on the next request. `HttpOnly`, `SameSite=Lax`, `Path=/console`,
  `Secure` per `console_cookie_secure` (unset: when the request came over TLS).
- **CSRF**: every POST carries a token (form field `csrf_token` or header `X-CSRF-Token`) that is an
  HMAC of the visitor's session id (or, before signing in, of a random visitor nonce held in its own
  cookie), compared in constant time; and its `Origin` (or, without one, `Referer`) must be this
  host or a `console_trusted_origins` entry. Either failing is a 403 page, before anything runs.
- **Tenancy**: `org_page(permission)` asks the application's access policy, like the routers'
  `org_scope`: another organisation is NotFound, rendered as the one 404 page.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

from fastapi import Depends, Request
from fastapi.responses import Response

from application import Principal
from application.request_access import RequestAccess
from domain.errors import NotFound, Unauthenticated
from domain.permissions import Permission
from interfaces.http import ratelimit
from interfaces.http.deps import Caller, OrgScope, parse_id
from interfaces.observability.logs import bind

SESSION_COOKIE = "pf_console"
VISITOR_COOKIE = "pf_visitor"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/console"
MAX_FORM_FIELDS = 2_000


class LoginRequired(Exception):
    """No valid session: the handler answers with a redirect to the sign-in page."""


class Refused(Exception):
    """A request the console refuses before running anything (CSRF, origin, form encoding)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """HMAC-SHA256 under a key derived from the JWT secret for one purpose."""

    def __init__(self, secret: str, purpose: str):
        self._key = hmac.new(secret.encode(), f"promptforge-console:{purpose}".encode(), hashlib.sha256).digest()

    def mac(self, value: str) -> str:
        return _b64(hmac.new(self._key, value.encode(), hashlib.sha256).digest())

    def sign(self, value: str) -> str:
        return f"{value}.{self.mac(value)}"

    def unsign(self, signed: str | None) -> str | None:
        if not signed or len(signed) > 512 or "." not in signed:
            return None
        value, _, mac = signed.rpartition(".")
        return value if hmac.compare_digest(mac, self.mac(value)) else None


@dataclass(frozen=True)
class Visitor:
    """Who the cookies say the browser is (signatures checked, nothing looked up yet)."""

    user_id: UUID | None = None
    session_id: UUID | None = None
    nonce: str | None = None

    @property
    def binding(self) -> str | None:
        """What this visitor's CSRF token is bound to."""
        if self.session_id is not None:
            return f"session:{self.session_id}"
        return f"visitor:{self.nonce}" if self.nonce else None


class ConsoleKeys:
    """The console's signers, built once per app from the settings."""

    def __init__(self, settings):
        self.cookie = Signer(settings.jwt_secret, "session-cookie")
        self.visitor = Signer(settings.jwt_secret, "visitor-cookie")
        self.csrf = Signer(settings.jwt_secret, "csrf")
        self.max_age = settings.refresh_token_ttl_seconds
        self.secure = settings.console_cookie_secure
        self.trusted = {o.rstrip("/").lower() for o in settings.console_trusted_origins}

    def session_value(self, user_id: UUID, session_id: UUID) -> str:
        return self.cookie.sign(f"{user_id}.{session_id}.{int(time.time())}")

    def read(self, request: Request) -> Visitor:
        user_id = session_id = None
        value = self.cookie.unsign(request.cookies.get(SESSION_COOKIE))
        if value is not None:
            parts = value.split(".")
            if len(parts) == 3 and parts[2].isdigit() and int(parts[2]) + self.max_age > time.time():
                try:
                    user_id, session_id = UUID(parts[0]), UUID(parts[1])
                except ValueError:
                    user_id = session_id = None
        return Visitor(user_id, session_id, self.visitor.unsign(request.cookies.get(VISITOR_COOKIE)))

    def token(self, visitor: Visitor) -> str:
        binding = visitor.binding
        return self.csrf.mac(binding) if binding else ""

    def secure_for(self, request: Request) -> bool:
        return self.secure if self.secure is not None else request.url.scheme == "https"

    def set_session(self, request: Request, response: Response, user_id: UUID, session_id: UUID) -> None:
        response.set_cookie(SESSION_COOKIE, self.session_value(user_id, session_id), max_age=self.max_age,
                            path=COOKIE_PATH, httponly=True, samesite="lax", secure=self.secure_for(request))

    def clear_session(self, request: Request, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax",
                               secure=self.secure_for(request))

    @staticmethod
    def with_nonce(visitor: Visitor) -> tuple[Visitor, bool]:
        """The visitor with a nonce for the forms shown before signing in (sign in, register), and
        whether it is new (then `set_visitor` must send its cookie)."""
        if visitor.nonce:
            return visitor, False
        return Visitor(visitor.user_id, visitor.session_id, secrets.token_urlsafe(18)), True

    def set_visitor(self, request: Request, response: Response, visitor: Visitor) -> None:
        response.set_cookie(VISITOR_COOKIE, self.visitor.sign(visitor.nonce or ""), max_age=self.max_age,
                            path=COOKIE_PATH, httponly=True, samesite="lax", secure=self.secure_for(request))

    def same_origin(self, request: Request) -> bool:
        """`Origin` (or `Referer` without it) names this host or a trusted origin. Requests with
        neither come from non-browser clients, which the CSRF token alone protects against."""
        origin = request.headers.get("origin")
        if origin is None:
            referer = request.headers.get("referer")
            if referer is None:
                return True
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        origin = origin.strip().rstrip("/").lower()
        if origin in self.trusted:
            return True
        parts = urlsplit(origin)
        host = request.headers.get("host", "").lower()
        return bool(host) and parts.netloc == host and parts.scheme in (request.url.scheme, "https")


def keys_of(request: Request) -> ConsoleKeys:
    return request.app.state.console_keys


async def visitor(request: Request) -> Visitor:
    return keys_of(request).read(request)


VisitorDep = Annotated[Visitor, Depends(visitor)]


# -- forms and CSRF ---------------------------------------------------------------------------
class Form:
    """A url-encoded form body (the console posts nothing else)."""

    def __init__(self, fields: dict[str, list[str]]):
        self._fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self._fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self._fields.get(name, []))

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name).strip()
        return int(value) if value.isdigit() and len(value) <= 10 else default

    def prefixed(self, prefix: str) -> dict[str, str]:
        return {k[len(prefix):]: v[0] for k, v in self._fields.items() if k.startswith(prefix) and v}

    def __contains__(self, name: str) -> bool:
        return name in self._fields


async def checked_form(request: Request, who: VisitorDep) -> Form:
    """The POSTed form, after the origin and CSRF checks (403 page otherwise)."""
    keys = keys_of(request)
    if not keys.same_origin(request):
        raise Refused(403, "This form was sent from another site. Reload the page and try again.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if body and content_type != "application/x-www-form-urlencoded":
        raise Refused(415, "The console accepts url-encoded forms only.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "The form could not be read.") from None
    expected = keys.token(who)
    given = request.headers.get(CSRF_HEADER) or (fields.get(CSRF_FIELD) or [""])[0]
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(403, "The form has expired or did not come from this console. Reload the page and try again.")
    return Form(fields)


FormDep = Annotated[Form, Depends(checked_form)]


# -- the signed-in user and the org scope -----------------------------------------------------
def _signed_in(request: Request, who: Visitor, access: RequestAccess) -> Caller:
    if who.user_id is None or who.session_id is None:
        raise LoginRequired()
    try:
        access.session(who.session_id, who.user_id)
    except (NotFound, Unauthenticated):
        raise LoginRequired() from None
    bind(user_id=who.user_id)
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        ratelimit.apply(request.state, limiter, "user", str(who.user_id))
    return Caller(Principal.user(who.user_id), who.session_id)


def signed_in(request: Request, who: VisitorDep) -> Caller:
    return _signed_in(request, who, request.app.state.container.app.request_access())


SignedIn = Annotated[Caller, Depends(signed_in)]


def org_page(permission: Permission | None = None):
    """Dependency: the signed-in user inside `{org_id}` (404 page outside it; 403 without `permission`)."""

    def dependency(org_id: str, request: Request, who: VisitorDep) -> OrgScope:
        access = request.app.state.container.app.request_access()  # one check of the log head
        caller = _signed_in(request, who, access)
        org = parse_id(org_id, "ORG_NOT_FOUND", "organisation")
        grant = access.grant(caller.principal, org, permission)
        bind(org_id=org)
        limiter = getattr(request.app.state, "rate_limiter", None)
        if limiter is not None:
            ratelimit.apply(request.state, limiter, "org", str(org))
        return OrgScope(caller, org, grant, access.head)

    return dependency


OrgPage = Annotated[OrgScope, Depends(org_page())]
ReadPage = Annotated[OrgScope, Depends(org_page(Permission.PROMPTS_READ))]
#: The pages holding a form for a new prompt or version: only for those who may save it.
WritePage = Annotated[OrgScope, Depends(org_page(Permission.PROMPTS_WRITE))]
AuditPage = Annotated[OrgScope, Depends(org_page(Permission.AUDIT_READ))]
KeysPage = Annotated[OrgScope, Depends(org_page(Permission.API_KEYS_MANAGE))]
ManagePage = Annotated[OrgScope, Depends(org_page(Permission.ORG_MANAGE))]
