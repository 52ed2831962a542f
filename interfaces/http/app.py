"""The FastAPI app factory: `create_app(container=None, settings=None)`.

Run it with `uvicorn --factory interfaces.http.app:create_app` (or `promptforge serve`).
With no container it builds one from Settings and starts/closes it in the lifespan; a
container passed in belongs to the caller (tests), who starts and closes it.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from interfaces.bootstrap import Container, build, http_services
from interfaces.console.app import install as install_console
from interfaces.http import errors
from interfaces.http.docs import install_docs
from interfaces.http.middleware import RequestContextMiddleware
from interfaces.http.openapi import customise_openapi
from interfaces.http.routers import register
from interfaces.observability.logs import configure_logging
from interfaces.settings import Settings
from interfaces.startup import freeze_startup_objects

DESCRIPTION = """
Multi-tenant, event-sourced prompt registry.

* **Auth**: `Authorization: Bearer <access JWT>` (from `/v1/auth/login`) or `Bearer pfk_...` (an API key).
* **Tenancy**: another organisation's resources are always 404.
* **Consistency**: every command returns its log `position` (also `X-Event-Position`); pass it to a
  query as `min_position` (or `X-Min-Position`) to read your own write. If the read model is not there
  within the bound, the answer is 503 `READ_MODEL_LAGGING` with `Retry-After`.
* **Errors**: always `{"error": {"code", "message", "details"}, "request_id"}`.
* **Idempotency**: `Idempotency-Key` on `POST /v1/orgs`, `.../prompts`, `.../api-keys`, `.../versions`, `.../members`.
"""

TAGS = [
    {"name": "auth", "description": "Register, log in, rotate refresh tokens, log out, sessions."},
    {"name": "me", "description": "The caller."},
    {"name": "organisations", "description": "Tenants: plan FREE/PRO with limits on members, prompts, API keys."},
    {"name": "members", "description": "Roles: owner, admin, developer, reviewer, viewer."},
    {"name": "api keys", "description": "Keys carry a subset of the creator's permissions, in one org."},
    {"name": "prompts", "description": "Prompts, the by-name fetch path, time travel, render, archive."},
    {"name": "versions", "description": "Immutable versions, optimistic revisions, diffs."},
    {"name": "labels", "description": "Labels moved by compare-and-set; `production` needs prompts:promote."},
    {"name": "audit", "description": "Who did what, derived from the event stream."},
    {"name": "search", "description": "Hybrid (semantic + keyword) search within an organisation."},
]


def create_app(container: Container | None = None, settings: Settings | None = None) -> FastAPI:
    owned = container is None
    if container is None:
        settings = settings or Settings()  # refuses production without a real JWT secret
        configure_logging(settings.log_level)  # once per process, before anything logs
        container = build(settings)
    settings = settings or container.settings

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owned:
            container.start()
            freeze_startup_objects()
        try:
            yield
        finally:
            hub.close()
            if services.head_check is not None:
                services.head_check.close()
            await services.rate_limiter.aclose()
            if owned:
                container.close()

    app = FastAPI(
        title="PromptForge API", version="1.0.0", description=DESCRIPTION, openapi_tags=TAGS, lifespan=lifespan,
        redirect_slashes=False, redoc_url=None,
        docs_url=None,  # served offline from vendored assets (interfaces.http.docs)
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    services = http_services(container)
    hub = services.change_hub
    app.state.container = container
    app.state.tokens = services.tokens
    app.state.login_throttle = services.login_throttle
    app.state.rate_limiter = services.rate_limiter
    app.state.search = container.search
    app.state.change_hub = hub
    app.state.fetch_cache = services.fetch_cache
    app.state.head_check = services.head_check
    app.state.catalogue_position = services.catalogue_position
    errors.install(app)
    register(app)
    install_docs(app, settings)
    install_console(app)  # the web console under /console, and `/` redirecting to it
    customise_openapi(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "If-None-Match",
                           "X-Request-ID", "X-Min-Position"],
            expose_headers=["ETag", "X-Event-Position", "X-Request-ID", "Idempotency-Replayed", "Retry-After",
                            "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes,  # outermost
                       metrics=container.metrics, limiter=app.state.rate_limiter)
    return app
