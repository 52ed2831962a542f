"""The console's page routers, one module per area (registered here, in routing order)."""
from __future__ import annotations

from interfaces.console.pages import auth, labels, live, org, prompts, releases, reviews

ROUTERS = (auth.router, prompts.router, labels.router, live.router, reviews.router, releases.router, org.router)
