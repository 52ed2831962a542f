"""The console as an application mounted under `/console` of the API app (`install`).

Its own app, so that it has its own error pages (HTML, not the API's JSON shape), its own security
headers, and stays out of the API's routes, OpenAPI document and contract tests. It shares the API
app's state (container, login throttle, rate limiter, change hub): one process, one of each."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.errors import DomainError, Forbidden, NotFound, Unauthenticated
from interfaces.console.pages import ROUTERS
from interfaces.console.pages.common import is_htmx
from interfaces.console.rendering import STATIC, render
from interfaces.console.session import ConsoleKeys, LoginRequired, Refused
from interfaces.http.errors import ApiError, status_of

PREFIX = "/console"
#: Scripts and styles only from the console's own (vendored) files: no inline script or style, no
#: eval (htmx's is switched off in base.html), nothing from another origin. `data:` images are
#: Pico's inline SVG icons.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Same-origin referrers: the CSRF origin check falls back on them, and with `no-referrer` a
    # browser sends `Origin: null` on form posts.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)
STATIC_CACHE = b"public, max-age=3600"


class SecurityHeaders:
    """Pure ASGI: the console's headers on every console response; pages are never cached."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(PREFIX + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(HEADERS)]
                out.extend(HEADERS)
                if not any(k.lower() == b"cache-control" for k, _ in out):
                    out.append((b"cache-control", STATIC_CACHE if static else b"no-store"))
                message["headers"] = out
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (("?" + request.url.query) if request.url.query else "")
    location = f"{PREFIX}/login?next={target}" if request.method == "GET" else f"{PREFIX}/login"
    if is_htmx(request):  # a fragment request: have htmx navigate the whole page
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, title=title, message=message)


def _not_found(request: Request) -> HTMLResponse:
    """One page for every 404: a missing page, prompt or organisation and another organisation's
    look the same (no message that could tell them apart)."""
    return _error_page(request, 404, "Not found", "This page does not exist, or you do not have access to it.")


async def _domain_error(request: Request, exc: DomainError) -> Response:
    if isinstance(exc, NotFound):
        return _not_found(request)
    if isinstance(exc, Unauthenticated):
        return _login_redirect(request)
    if isinstance(exc, Forbidden):
        return _error_page(request, 403, "Not allowed", exc.message)
    return _error_page(request, status_of(exc), "That did not work", exc.message)


async def _api_error(request: Request, exc: ApiError) -> Response:
    return _error_page(request, exc.status, "That did not work", exc.message)


async def _refused(request: Request, exc: Refused) -> Response:
    return _error_page(request, exc.status, "Request refused", exc.message)


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    return _login_redirect(request)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 404:
        return _not_found(request)
    if exc.status_code == 405:
        return _error_page(request, 405, "Not allowed", "This page does not accept that kind of request.")
    return _error_page(request, exc.status_code, "That did not work", "The request could not be handled.")


async def _validation_error(request: Request, exc: Exception) -> Response:
    return _error_page(request, 400, "That did not work", "A parameter of this page is not valid.")


def create_console(state) -> FastAPI:
    """The console app, sharing `state` (the API app's) for the container and the process's services."""
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    console.state = state
    state.console_keys = ConsoleKeys(state.container.settings)
    console.add_exception_handler(DomainError, _domain_error)  # type: ignore[arg-type]
    console.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    console.add_exception_handler(Refused, _refused)  # type: ignore[arg-type]
    console.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    console.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    console.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    for router in ROUTERS:
        console.include_router(router)
    console.mount("/static", StaticFiles(directory=STATIC), name="static")
    return console


def install(app: FastAPI) -> None:
    """Mount the console under `/console` and send `/` there (the one call in create_app)."""
    settings = app.state.container.settings
    if not settings.console_enabled:
        return

    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    app.add_route("/", root, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_route(PREFIX, root, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(PREFIX, SecurityHeaders(create_console(app.state)), name="console")
