"""What a label points at across the organisation, now or as of a moment."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter

from domain.values import clean_label
from interfaces.http.deps import ContainerDep, ReadScope, fresh
from interfaces.http.kit import AsOf, parse_instant
from interfaces.http.schemas.common import ERRORS
from interfaces.http.schemas.governance import LabelEntry, LabelSnapshot

router = APIRouter(prefix="/v1/orgs/{org_id}/labels", tags=["labels"], responses=ERRORS)


@router.get("/{label}", response_model=LabelSnapshot, summary="Every prompt's version under a label (as of T)")
def label_snapshot(scope: ReadScope, _: fresh("label_history", "catalogue"), label: str, container: ContainerDep,
                   as_of: AsOf = None) -> LabelSnapshot:
    """Answered from the label history (the stream of moves): each prompt's last move of the label
    recorded by `as_of` (default: now). Removed labels are absent. Names are today's."""
    instant = parse_instant(as_of, "as_of") if as_of is not None else None
    key = clean_label(label)
    rows = container.label_history.at(str(scope.org_id), key, instant or datetime.now(timezone.utc))
    items = []
    for row in rows:
        prompt = container.catalogue.get(str(scope.org_id), row["prompt_id"])
        items.append(LabelEntry(prompt_id=row["prompt_id"], name=prompt["name"] if prompt else None,
                                version=row["to_version"], split=row["split"], since=row["moved_at"]))
    return LabelSnapshot(label=key, as_of=instant, items=sorted(items, key=lambda i: (i.name or "", i.prompt_id)))
