"""Sign in, register, sign out; the console's home, the organisation switcher, a new organisation."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from domain.errors import DomainError
from interfaces.console.pages.common import attempt, org_url, settle, status_for
from interfaces.console.rendering import redirect, render, render_public
from interfaces.console.session import FormDep, SignedIn, VisitorDep, keys_of
from interfaces.http.deps import ContainerDep, RequestId, client_address, parse_id, user_agent
from interfaces.http.errors import ApiError

router = APIRouter()


def _next(target: str | None) -> str:
    """Only a console path of this site (no `//host`, no scheme): never an open redirect."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


@router.get("/")
def home(request: Request, who: VisitorDep, container: ContainerDep) -> Response:
    if who.user_id is None:
        return redirect("/console/login")
    orgs = container.memberships.orgs_of(str(who.user_id))
    return redirect(org_url(orgs[0]["org_id"], "prompts") if orgs else "/console/orgs/new")


@router.get("/login")
def login_page(request: Request, who: VisitorDep,
               next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    return render_public(request, "login.html", who, next=_next(next), email="")


@router.post("/login")
def login(request: Request, form: FormDep, who: VisitorDep, container: ContainerDep, rid: RequestId) -> Response:
    """The application's login, throttled like POST /v1/auth/login; the session goes in the cookie."""
    email, password, target = form.get("email").strip(), form.get("password"), _next(form.get("next"))
    throttle, address = request.app.state.login_throttle, client_address(request)
    try:
        throttle.attempt(email, address)
        grant = container.app.login(email, password, user_agent(request), rid)
    except (DomainError, ApiError) as exc:
        status = exc.status if isinstance(exc, ApiError) else 401
        return render_public(request, "login.html", who, status=status, next=target, email=email, error=exc.message)
    throttle.succeeded(email, address)
    response = redirect(target)
    keys_of(request).set_session(request, response, grant.user_id, grant.session_id)
    return response


@router.get("/register")
def register_page(request: Request, who: VisitorDep) -> Response:
    return render_public(request, "register.html", who, email="", display_name="")


@router.post("/register")
def register(request: Request, form: FormDep, who: VisitorDep, container: ContainerDep, rid: RequestId) -> Response:
    email, name = form.get("email").strip(), form.get("display_name").strip()
    _, error = attempt(container.app.register_user, email, form.get("password"), name, rid)
    if error is not None:
        return render_public(request, "register.html", who, status=status_for(error), email=email,
                             display_name=name, error=error.message)
    return redirect("/console/login", done="registered")


@router.post("/logout")
def logout(request: Request, form: FormDep, who: VisitorDep, container: ContainerDep, rid: RequestId) -> Response:
    """Revokes the session (the cookie alone is worthless afterwards), then forgets the cookie."""
    if who.session_id is not None and who.user_id is not None:
        try:
            container.app.logout(who.session_id, who.user_id, rid)
        except DomainError:  # already revoked or unknown: signing out still succeeds
            pass
    response = redirect("/console/login", done="signed_out")
    keys_of(request).clear_session(request, response)
    return response


@router.get("/switch")
def switch(caller: SignedIn, org: Annotated[str, Query(max_length=64)]) -> Response:
    """The organisation switcher's target (the org page itself checks membership)."""
    return redirect(org_url(parse_id(org, "ORG_NOT_FOUND", "organisation"), "prompts"))


@router.get("/orgs/new")
def new_org_page(request: Request, caller: SignedIn) -> Response:
    return render(request, "org_new.html", caller=caller, name="")


@router.post("/orgs/new")
def create_org(request: Request, form: FormDep, caller: SignedIn, container: ContainerDep, rid: RequestId) -> Response:
    name = form.get("name").strip()
    result, error = attempt(container.app.create_organisation, caller.principal, name, rid)
    if error is not None:
        return render(request, "org_new.html", caller=caller, status=status_for(error), name=name, error=error.message)
    settle(container, result.position)
    return redirect(org_url(result.id, "prompts"), done="org_created")
