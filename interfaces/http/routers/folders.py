"""Folders: derived from prompt names (`support/billing/refund-reply` is in `support/billing`)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from domain.values import clean_prompt_name
from interfaces.http.deps import ContainerDep, ReadScope, fresh
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.prompts import FolderList, FolderOut

router = APIRouter(prefix="/v1/orgs/{org_id}/folders", tags=["prompts"], responses=ERRORS)


@router.get("", response_model=FolderList, summary="Sub-folders of a folder, with their prompt counts")
def folders(scope: ReadScope, _: fresh("catalogue"), container: ContainerDep,
            parent: Annotated[str, Query(max_length=200, description="A folder path; empty = the top level")] = "",
            ) -> FolderList:
    """Folders exist while prompts are in them (there is nothing to create or delete). Counts leave
    archived prompts out; `GET …/prompts?folder=` lists a folder's own prompts."""
    parent = parent.strip().strip("/")
    found = container.catalogue.folders(str(scope.org_id), clean_prompt_name(parent) if parent else "")
    return FolderList(parent=found["parent"], prompts=found["prompts"],
                      folders=[FolderOut(**f) for f in found["folders"]])
