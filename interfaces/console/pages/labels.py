"""Labels of one prompt: move (compare-and-set) and remove. Protected labels are refused by the
application (LABEL_PROTECTED); the page then offers a review request instead."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from interfaces.console.pages.common import attempt, org_url, settle
from interfaces.console.pages.prompts import refused_on_prompt_page
from interfaces.console.rendering import redirect
from interfaces.console.session import FormDep, OrgPage
from interfaces.http.deps import ContainerDep, RequestId
from interfaces.http.kit import prompt_id_of

router = APIRouter(prefix="/orgs/{org_id}/prompts/{prompt_id}/labels")


@router.post("/move")
def move_label(request: Request, form: FormDep, scope: OrgPage, prompt_id: str, container: ContainerDep,
               rid: RequestId) -> Response:
    """`expected_version` is what the label pointed at when the page was shown (0: unset)."""
    pid = prompt_id_of(prompt_id)
    label = form.get("label").strip()
    result, error = attempt(container.app.move_label, scope.principal, scope.org_id, pid, label, form.int("version"),
                            rid, expected_version=form.int("expected_version", 0))
    if error is not None:
        return refused_on_prompt_page(request, scope, container, prompt_id, error, label)
    settle(container, result.position)
    return redirect(org_url(scope, "prompts", pid), done="label_moved")


@router.post("/remove")
def remove_label(request: Request, form: FormDep, scope: OrgPage, prompt_id: str, container: ContainerDep,
                 rid: RequestId) -> Response:
    pid = prompt_id_of(prompt_id)
    label = form.get("label").strip()
    result, error = attempt(container.app.remove_label, scope.principal, scope.org_id, pid, label, rid,
                            expected_version=form.int("expected_version"))
    if error is not None:
        return refused_on_prompt_page(request, scope, container, prompt_id, error, label)
    settle(container, result.position)
    return redirect(org_url(scope, "prompts", pid), done="label_removed")
