"""Releases: several prompts moved under one label in one atomic step, recorded, and undone as one.

A release is saved together with the label moves it made (every prompt's LabelMoved in the same
transaction), so it exists exactly when all its moves happened. Each move remembers what the label
pointed at before, so a rollback is another release back to those values."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.base import AuditedAggregate
from domain.errors import Conflict
from domain.review import clean_reason


class Release(AuditedAggregate):
    class Created(AuditedAggregate.Created):
        org_id: UUID
        label: str
        #: [{prompt_id, name, from (version, split or None), to (version, split or None)}]
        moves: list[dict[str, Any]]
        reason: str
        #: The review request it came through ("" when the label was not protected).
        review_id: str
        #: The release this one rolls back ("" otherwise).
        rollback_of: str

        def apply(self, release: "Release") -> None:
            release.org_id = self.org_id
            release.label = self.label
            release.moves = [dict(m) for m in self.moves]
            release.reason = self.reason
            release.review_id = self.review_id
            release.rollback_of = self.rollback_of
            release.rolled_back_by = ""

    class RolledBack(AuditedAggregate.Event):
        org_id: UUID
        rollback_release_id: str

        def apply(self, release: "Release") -> None:
            release.rolled_back_by = self.rollback_release_id

    @classmethod
    def record(cls, id: UUID, org_id: UUID, label: str, moves: list[dict[str, Any]], reason: str,
               review_id: str = "", rollback_of: str = "") -> "Release":
        return cls._create(cls.Created, id=id, org_id=org_id, label=label, moves=moves, reason=clean_reason(reason),
                           review_id=review_id, rollback_of=rollback_of)

    def rollback_moves(self) -> list[dict[str, Any]]:
        """The moves that undo this release: every label back to what it was, expecting what it set."""
        if self.rolled_back_by:
            raise Conflict("this release was already rolled back", code="RELEASE_ROLLED_BACK",
                           details={"rollback": self.rolled_back_by})
        return [{"prompt_id": m["prompt_id"], "name": m["name"], "target": m["from"], "expected": m["to"]}
                for m in self.moves]

    def rolled_back(self, rollback_release_id: str) -> None:
        self.trigger_event(self.RolledBack, org_id=self.org_id, rollback_release_id=rollback_release_id)
