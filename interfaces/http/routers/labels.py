"""Labels: move (compare-and-set), remove, history. `latest` is automatic and cannot be set.

Moving or removing `production` needs prompts:promote (reviewer and up); other labels need
prompts:write (developer and up)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from domain.errors import Invalid
from domain.values import clean_label
from interfaces.http.deps import ContainerDep, MemberScope, ReadScope, RequestId, command_headers, fresh
from interfaces.http.kit import prompt_id_of
from interfaces.http.routers.prompts import require_prompt
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.prompts import LabelHistory, LabelMove, LabelMoveOut, LabelOut

router = APIRouter(prefix="/v1/orgs/{org_id}/prompts/{prompt_id}/labels", tags=["labels"], responses=ERRORS)


@router.get("/history", response_model=LabelHistory, summary="Every move and removal of the prompt's labels")
def label_history(scope: ReadScope, _: fresh("catalogue", "label_history"), prompt_id: str, container: ContainerDep,
                  label: Annotated[str | None, Query(max_length=64)] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100) -> LabelHistory:
    pid = prompt_id_of(prompt_id)
    require_prompt(container, scope.org_id, pid)
    rows = container.label_history.list(str(scope.org_id), str(pid), label=label.strip().lower() if label else None,
                                        limit=limit)
    return LabelHistory(items=[LabelMoveOut(**{k: (r[k] or None) if k in ("review_id", "requested_by") else r[k]
                                               for k in LabelMoveOut.model_fields}) for r in rows])


@router.put("/{label}", response_model=LabelOut, summary="Point a label at a version (compare-and-set)")
def move_label(scope: MemberScope, prompt_id: str, label: str, body: LabelMove, response: Response,
               container: ContainerDep, rid: RequestId) -> LabelOut:
    """`expected_version` (0 = unset) guards against concurrent moves: mismatch is 409 `LABEL_CONFLICT`.
    Moving a label to where it already points changes nothing (position = current head). A protected
    label (an organisation setting, `production` by default) is refused with 409 `LABEL_PROTECTED`:
    request its change at `POST /v1/orgs/{org_id}/review-requests`."""
    pid = prompt_id_of(prompt_id)
    split = [e.model_dump() for e in body.split] if body.split is not None else None
    result = container.app.move_label(scope.principal, scope.org_id, pid, label, body.version, rid,
                                      expected_version=body.expected_version, split=split, checked_head=scope.head)
    position = result.position or container.app.head_position()
    command_headers(response, position)
    return LabelOut(prompt_id=str(pid), label=clean_label(label), version=result.version, split=split,
                    position=position)


@router.delete("/{label}", response_model=LabelOut, summary="Remove a label")
def remove_label(scope: MemberScope, prompt_id: str, label: str, response: Response, container: ContainerDep,
                 rid: RequestId,
                 expected_version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> LabelOut:
    pid = prompt_id_of(prompt_id)
    result = container.app.remove_label(scope.principal, scope.org_id, pid, label, rid,
                                        expected_version=expected_version, checked_head=scope.head)
    command_headers(response, result.position)
    try:
        name = clean_label(label)
    except Invalid:  # pragma: no cover - the command already validated it
        name = label
    return LabelOut(prompt_id=str(pid), label=name, version=None, position=result.position or 0)
