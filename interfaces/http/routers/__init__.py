"""The one place where the HTTP routers are registered (add a line to add one).

Order matters where paths overlap: `fetch` (`/prompts/by-name/{name:path}`, names may hold '/')
comes before the routers whose paths start with `/prompts/{prompt_id}/...`. It comes first of all:
it is the hot path, and routes are matched in order (no other route's path starts like its own)."""
from __future__ import annotations

from fastapi import FastAPI

from interfaces.http.compat import langfuse as langfuse_compat

from interfaces.http.routers import (
    api_keys, audit, auth, changes, fetch, folders, label_snapshots, labels, me, members, ops, orgs, prompts, releases, reviews,
    search, versions, webhooks,
)

ROUTERS = (fetch.router, ops.router, auth.router, me.router, orgs.router, members.router, api_keys.router,
           prompts.router, versions.router, labels.router, folders.router, reviews.router, releases.router,
           label_snapshots.router, changes.router, webhooks.router, audit.router, search.router,
           langfuse_compat.router)  # last: it ends with a catch-all for /api/public/*


def register(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
