"""`/docs`: Swagger UI served from vendored files (interfaces/http/static), so it works offline.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script. This one
references only `/docs/assets/…` (the vendored `swagger-ui-dist` files and PromptForge's own
initializer, `static/docs-init.js`), so the page's CSP (`middleware.DOCS_CSP`) allows scripts from
'self' only. Wiring: `FastAPI(docs_url=None, …)` then `install_docs(app, settings)`.
"""
from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse

from interfaces.settings import Settings

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
STATIC = Path(__file__).parent / "static"
JS, CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
#: name under /docs/assets/ -> (file, media type). Nothing else under static/ is served.
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (STATIC / "swagger-ui" / "swagger-ui-bundle.js", JS),
    "swagger-ui.css": (STATIC / "swagger-ui" / "swagger-ui.css", CSS),
    "favicon-32x32.png": (STATIC / "swagger-ui" / "favicon-32x32.png", "image/png"),
    "docs-init.js": (STATIC / "docs-init.js", JS),
}
ASSET_CACHE = "public, max-age=3600"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/docs-init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI, settings: Settings) -> None:
    """Register `/docs` and `/docs/assets/{name}` when `settings.docs_enabled` (else nothing)."""
    if not settings.docs_enabled:
        return
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = PAGE.format(title=html.escape(app.title), assets=html.escape(root + ASSETS_PATH),
                           openapi_url=html.escape(root + openapi_url))
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    async def asset(request: Request) -> FileResponse:
        found = ASSETS.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404)
        path, media_type = found
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": ASSET_CACHE})

    app.add_route(DOCS_PATH, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_route(ASSETS_PATH + "/{name}", asset, methods=["GET"], include_in_schema=False)
