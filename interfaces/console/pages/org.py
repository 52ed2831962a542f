"""The organisation's pages: audit log, members and roles, API keys, webhooks and their deliveries,
and the admin page (projection status and lag)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from domain.errors import NotFound
from domain.permissions import Permission, Role
from domain.webhook import CHANGE_TYPES
from interfaces.console.pages.common import attempt, org_url, settle, split_list, status_for
from interfaces.console.pages.prompts import instant
from interfaces.console.rendering import redirect, render
from interfaces.console.session import AuditPage, FormDep, KeysPage, ManagePage, OrgPage, ReadPage
from interfaces.http.deps import ContainerDep, RequestId, parse_id

router = APIRouter(prefix="/orgs/{org_id}")
ROLES = [r.value for r in Role]
PERMISSIONS = [p.value for p in Permission]


# -- audit -------------------------------------------------------------------------------------
@router.get("/audit")
def audit(request: Request, scope: AuditPage, container: ContainerDep,
          actor: Annotated[str | None, Query(max_length=80)] = None,
          action: Annotated[str | None, Query(max_length=64)] = None,
          target: Annotated[str | None, Query(max_length=36)] = None,
          since: Annotated[str | None, Query(max_length=64)] = None,
          until: Annotated[str | None, Query(max_length=64)] = None,
          cursor: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    filters = {"actor": actor or None, "action": (action or "").strip() or None, "target": (target or "").strip() or None,
               "since": since or None, "until": until or None}
    rows, next_cursor = container.audit.query(str(scope.org_id), actor=filters["actor"], action=filters["action"],
                                              target_id=filters["target"], since=instant(since), until=instant(until),
                                              cursor=cursor, limit=50)
    return render(request, "audit.html", scope=scope, rows=rows, next_cursor=next_cursor, filters=filters,
                  members=container.memberships.members(str(scope.org_id)))


# -- members -----------------------------------------------------------------------------------
def _members_page(request: Request, scope, container, status: int = 200, **extra) -> Response:
    return render(request, "members.html", scope=scope, status=status, roles=ROLES,
                  members=container.memberships.members(str(scope.org_id)), **extra)


@router.get("/members")
def members(request: Request, scope: ReadPage, container: ContainerDep) -> Response:
    return _members_page(request, scope, container)


@router.post("/members")
def add_member(request: Request, form: FormDep, scope: OrgPage, container: ContainerDep, rid: RequestId) -> Response:
    result, error = attempt(container.app.add_member, scope.principal, scope.org_id, form.get("role"), rid,
                            email=form.get("email").strip())
    if error is not None:
        return _members_page(request, scope, container, status_for(error), error=error.message, email=form.get("email"))
    settle(container, result.position)
    return redirect(org_url(scope, "members"), done="member_added")


@router.post("/members/{user_id}")
def change_member(request: Request, form: FormDep, scope: OrgPage, user_id: str, container: ContainerDep,
                  rid: RequestId) -> Response:
    """Change the role (`role`), or remove the member (`remove=1`)."""
    target = parse_id(user_id, "MEMBER_NOT_FOUND", "member")
    if form.get("remove") == "1":
        result, error = attempt(container.app.remove_member, scope.principal, scope.org_id, target, rid)
        done = "member_removed"
    else:
        result, error = attempt(container.app.change_member_role, scope.principal, scope.org_id, target,
                                form.get("role"), rid)
        done = "role_changed"
    if error is not None:
        return _members_page(request, scope, container, status_for(error), error=error.message)
    settle(container, result.position)
    return redirect(org_url(scope, "members"), done=done)


# -- API keys ----------------------------------------------------------------------------------
def _keys_page(request: Request, scope, container, status: int = 200, **extra) -> Response:
    return render(request, "api_keys.html", scope=scope, status=status, permissions=PERMISSIONS,
                  keys=container.api_keys.list(str(scope.org_id)), **extra)


@router.get("/api-keys")
def api_keys(request: Request, scope: KeysPage, container: ContainerDep) -> Response:
    return _keys_page(request, scope, container)


@router.post("/api-keys")
def issue_key(request: Request, form: FormDep, scope: KeysPage, container: ContainerDep, rid: RequestId) -> Response:
    """The raw key is in this answer only (shown once, with a copy button); never stored or logged."""
    result, error = attempt(container.app.issue_api_key, scope.principal, scope.org_id, form.get("name").strip(),
                            form.getlist("permissions"), rid)
    if error is not None:
        return _keys_page(request, scope, container, status_for(error), error=error.message, name=form.get("name"))
    settle(container, result.position)
    return _keys_page(request, scope, container, 201, issued={"key": result.data["key"], "id": str(result.id),
                                                              "name": form.get("name").strip()})


@router.post("/api-keys/{key_id}/revoke")
def revoke_key(request: Request, form: FormDep, scope: KeysPage, key_id: str, container: ContainerDep,
               rid: RequestId) -> Response:
    target = parse_id(key_id, "API_KEY_NOT_FOUND", "API key")
    result, error = attempt(container.app.revoke_api_key, scope.principal, scope.org_id, target, rid)
    if error is not None:
        return _keys_page(request, scope, container, status_for(error), error=error.message)
    settle(container, result.position)
    return redirect(org_url(scope, "api-keys"), done="key_revoked")


# -- webhooks ----------------------------------------------------------------------------------
def _hooks_page(request: Request, scope, container, status: int = 200, **extra) -> Response:
    return render(request, "webhooks.html", scope=scope, status=status, change_types=sorted(CHANGE_TYPES),
                  hooks=container.webhooks.list(str(scope.org_id)), **extra)


@router.get("/webhooks")
def webhooks(request: Request, scope: ManagePage, container: ContainerDep) -> Response:
    return _hooks_page(request, scope, container)


@router.post("/webhooks")
def create_webhook(request: Request, form: FormDep, scope: ManagePage, container: ContainerDep,
                   rid: RequestId) -> Response:
    """The signing secret is in this answer only."""
    events = form.getlist("events") or split_list(form.get("events_text"))
    result, error = attempt(container.app.create_webhook, scope.principal, scope.org_id, url=form.get("url").strip(),
                            events=events, description=form.get("description"), request_id=rid)
    if error is not None:
        return _hooks_page(request, scope, container, status_for(error), error=error.message, url=form.get("url"),
                           description=form.get("description"))
    settle(container, result.position)
    return _hooks_page(request, scope, container, 201, secret={"id": str(result.id), "value": result.data["secret"]})


def _hook(container, scope, webhook_id: str):
    return container.app.get_webhook(scope.principal, scope.org_id, parse_id(webhook_id, "WEBHOOK_NOT_FOUND", "webhook"))


@router.get("/webhooks/{webhook_id}")
def webhook_page(request: Request, scope: ManagePage, webhook_id: str, container: ContainerDep,
                 before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None) -> Response:
    hook = _hook(container, scope, webhook_id)
    row = container.webhooks.get(str(scope.org_id), str(hook.id))
    if row is None:
        raise NotFound("webhook not found", code="WEBHOOK_NOT_FOUND")
    log = container.deliveries.log(str(scope.org_id), str(hook.id), before=before, limit=50) if container.deliveries else []
    return render(request, "webhook.html", scope=scope, hook=row, deliveries=log,
                  next_before=log[-1]["position"] if len(log) == 50 else None)


@router.post("/webhooks/{webhook_id}")
def change_webhook(request: Request, form: FormDep, scope: ManagePage, webhook_id: str, container: ContainerDep,
                   rid: RequestId) -> Response:
    """`action`: enable, disable, rotate (new secret, shown once) or delete."""
    target = parse_id(webhook_id, "WEBHOOK_NOT_FOUND", "webhook")
    action = form.get("action")
    if action == "delete":
        result, error = attempt(container.app.delete_webhook, scope.principal, scope.org_id, target, rid)
    elif action == "rotate":
        result, error = attempt(container.app.rotate_webhook_secret, scope.principal, scope.org_id, target, rid)
    else:
        result, error = attempt(container.app.update_webhook, scope.principal, scope.org_id, target, rid,
                                enabled=action == "enable")
    if error is not None:
        return _hooks_page(request, scope, container, status_for(error), error=error.message)
    settle(container, result.position)
    if action == "rotate":
        return _hooks_page(request, scope, container, secret={"id": str(target), "value": result.data["secret"]})
    return redirect(org_url(scope, "webhooks"), done="webhook_deleted" if action == "delete" else "webhook_updated")


# -- admin -------------------------------------------------------------------------------------
@router.get("/admin")
def admin(request: Request, scope: ManagePage, container: ContainerDep) -> Response:
    """Projection positions and lag (the process's read models: no tenant data)."""
    return render(request, "admin.html", scope=scope, statuses=container.supervisor.status(),
                  head=container.app.head_position(), vectors_error=container.vectors_error)
