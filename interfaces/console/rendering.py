"""Templates (Jinja2, autoescaped) and the page chrome every console page shares.

User-controlled text (names, templates, commit messages, tags, error messages quoting them) only
ever reaches a template as data: autoescaping is on for every template, nothing is marked safe, and
no template is ever built from user text, so `<script>` stays text and `{{7*7}}` stays literal."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from domain.errors import DomainError
from interfaces.console.session import CSRF_FIELD, Visitor, keys_of
from interfaces.http.deps import Caller, OrgScope

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
#: Bumped with the vendored assets, so browsers fetch new files (they are cached for an hour).
ASSET_VERSION = "1"

#: Messages shown after a successful form (`?done=<key>`): fixed text, never user input.
DONE = {
    "created": "Prompt created.", "revised": "New version saved.", "label_moved": "Label moved.",
    "label_removed": "Label removed.", "review_requested": "Review requested.", "approved": "Approval recorded.",
    "applied": "Approved and applied.", "rejected": "Request rejected.", "withdrawn": "Request withdrawn.",
    "released": "Release applied.", "rolled_back": "Release rolled back.", "member_added": "Member added.",
    "role_changed": "Role changed.", "member_removed": "Member removed.", "key_revoked": "API key revoked.",
    "webhook_deleted": "Webhook deleted.", "webhook_updated": "Webhook updated.", "org_created": "Organisation created.",
    "archived": "Prompt archived.", "restored": "Prompt restored.", "registered": "Account created: sign in.",
    "signed_out": "You are signed out.",
}


def _when(value: Any) -> str:
    """UTC, to the second (read models on SQLite hand back naive UTC datetimes)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: Any) -> str:
    """An instant as RFC 3339 (what `as_of` links carry)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value or "")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _query(base: dict[str, Any] | None = None, **changes: Any) -> str:
    """`?a=1&b=2` from the current filters with some changed (None drops a key)."""
    merged = {**(base or {}), **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "")}
    return ("?" + urlencode(kept, doseq=True)) if kept else ""


env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
                  trim_blocks=True, lstrip_blocks=True, auto_reload=False, cache_size=200)
env.filters.update(when=_when, iso=iso, pretty=_pretty)
env.globals.update(query=_query, CSRF_FIELD=CSRF_FIELD, asset_version=ASSET_VERSION)


def people_of(container, org_id) -> dict[str, str]:
    """`user:<id>` -> display name of the organisation's members (for authors, actors, approvers)."""
    return {f"user:{m['user_id']}": m["display_name"] or m["email"] for m in container.memberships.members(str(org_id))}


def actor_name(people: dict[str, str], actor: str | None) -> str:
    if not actor:
        return ""
    if actor in people:
        return people[actor]
    kind, _, ident = actor.partition(":")
    if kind == "api_key":
        return f"API key {ident[:8]}"
    if kind == "user":
        return f"former member {ident[:8]}"
    return actor


def problem(exc: DomainError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details}


def _base(request: Request, csrf: str) -> dict[str, Any]:
    """What every page's template may use, signed in or not."""
    return {"request": request, "csrf": csrf, "user": None, "orgs": [], "org": None, "can": frozenset(),
            "people": {}, "path": request.url.path, "done": DONE.get(request.query_params.get("done", ""))}


def _chrome(request: Request, caller: Caller | None, scope: OrgScope | None) -> dict[str, Any]:
    container = request.app.state.container
    keys = keys_of(request)
    chrome = _base(request, keys.token(keys.read(request)))
    if caller is not None:
        user = container.app.get_user(caller.user_id)
        chrome["user"] = {"id": str(user.id), "name": user.display_name, "email": user.email}
        chrome["orgs"] = container.memberships.orgs_of(str(caller.user_id))
    if scope is not None:
        org = scope.grant.org
        chrome["org"] = {"id": str(org.id), "name": org.name, "plan": org.plan,
                         "role": scope.grant.role.value if scope.grant.role else "",
                         "protected": list(org.protected_labels)}
        chrome["can"] = scope.permissions
        chrome["people"] = people_of(container, scope.org_id)
    return chrome


def render(request: Request, template: str, *, caller: Caller | None = None, scope: OrgScope | None = None,
           status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """A full page (or, for a template under partials/, a fragment) with the chrome's context."""
    caller = caller or (scope.caller if scope is not None else None)
    values = _chrome(request, caller, scope)
    values["who"] = lambda actor: actor_name(values["people"], actor)
    values.update(context)
    return HTMLResponse(env.get_template(template).render(values), status_code=status, headers=headers)


def render_public(request: Request, template: str, visitor: Visitor, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A page shown before signing in: it carries the visitor cookie its form's token is bound to."""
    keys = keys_of(request)
    visitor, new = keys.with_nonce(visitor)
    values = {**_base(request, keys.token(visitor)), "who": lambda actor: actor or "", **context}
    response = HTMLResponse(env.get_template(template).render(values), status_code=status)
    if new:
        keys.set_visitor(request, response, visitor)
    return response


def fragment(template: str, **context: Any) -> str:
    return env.get_template(template).render(context)


def redirect(url: str, **params: Any) -> RedirectResponse:
    """303 See Other after a form (POST-redirect-GET)."""
    return RedirectResponse(url + _query(None, **params), status_code=303)
