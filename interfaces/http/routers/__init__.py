"""The one place where the HTTP routers are registered (add a line to add one).

Order matters where paths overlap: `prompts` (with `/prompts/by-name/{name}`) comes before the
routers whose paths start with `/prompts/{prompt_id}/...`."""
from __future__ import annotations

from fastapi import FastAPI

from interfaces.http.routers import api_keys, audit, auth, labels, me, members, ops, orgs, prompts, search, versions

ROUTERS = (ops.router, auth.router, me.router, orgs.router, members.router, api_keys.router, prompts.router, versions.router,
           labels.router, audit.router, search.router)


def register(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
