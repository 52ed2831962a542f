"""Review requests, releases and label snapshots."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator

from interfaces.http.schemas.common import Instant, RequestModel, ResponseModel
from interfaces.http.schemas.prompts import SPLIT_DOC, SplitEntry

EXPECTED = Field(ge=0, le=2**31 - 1, description="The version the label points at now (0 = not set): a "
                                                 "compare-and-set checked again when the change is applied.")
REASON = Field("", max_length=2000)


class ReviewRequestIn(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"prompt_id": "1d4c2f0e-6f0a-4e57-9a38-4d0c5b3c9e11", "label": "production", "version": 7,
         "expected_version": 5, "reason": "better refund wording"}]})
    prompt_id: UUID
    label: str = Field(max_length=64)
    version: StrictInt | None = Field(None, ge=1, le=2**31 - 1)
    split: list[SplitEntry] | None = Field(None, max_length=10, description=SPLIT_DOC)
    remove: StrictBool = Field(False, description="Request the label's removal instead of a move.")
    expected_version: StrictInt = EXPECTED
    reason: str = REASON

    @model_validator(mode="after")
    def _one_target(self) -> "ReviewRequestIn":
        if self.remove == (self.version is not None or self.split is not None) or (
                self.version is not None and self.split is not None):
            raise ValueError("give version, split or remove: true")
        return self


class Decision(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"comment": "checked the refund wording: good"}]})
    comment: str = Field("", max_length=2000)


class MoveOut(ResponseModel):
    prompt_id: str
    name: str
    version: int | None = Field(description="The version proposed (null with a split or a removal).")
    split: list[dict[str, int]] | None = None
    expected_version: int | None = None
    current: dict[str, Any] | None = Field(None, description="What the label points at now: {version, split}.")
    diff: str | None = Field(None, description="Unified diff from the label's current version to the proposed one.")


class ApprovalOut(ResponseModel):
    by: str = Field(description="The actor (user or API key) that approved.")
    approver: str = Field(description="The person answerable for the approval.")
    comment: str
    at: Instant


class ReviewOut(ResponseModel):
    id: str
    kind: str = Field(description="label | release | rollback")
    label: str
    status: str = Field(description="open | applied | rejected | withdrawn | superseded")
    moves: list[MoveOut]
    reason: str
    requested_by: str
    requester: str = Field(description="The person answerable for the request (the issuer, for an API key).")
    approvals_required: int
    approver_roles: list[str]
    approvals: list[ApprovalOut]
    decided_by: str | None
    comment: str | None
    conflicts: list[dict[str, Any]] | None
    release_id: str | None
    created_at: Instant
    updated_at: Instant
    position: int


class ReviewList(ResponseModel):
    items: list[ReviewOut]


class ReviewCreated(ResponseModel):
    id: str
    status: str
    position: int


class ReviewDecided(ResponseModel):
    id: str
    status: str
    release_id: str | None = None
    position: int


class ReleaseMoveIn(RequestModel):
    prompt_id: UUID | None = None
    name: str | None = Field(None, max_length=200, description="Instead of prompt_id.")
    version: StrictInt | None = Field(None, ge=1, le=2**31 - 1)
    split: list[SplitEntry] | None = Field(None, max_length=10)
    expected_version: StrictInt = EXPECTED

    @model_validator(mode="after")
    def _checks(self) -> "ReleaseMoveIn":
        if (self.prompt_id is None) == (self.name is None):
            raise ValueError("name the prompt by prompt_id or name")
        if (self.version is None) == (self.split is None):
            raise ValueError("give version or split")
        return self


class ReleaseIn(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"label": "production", "reason": "spring release", "moves": [
            {"name": "support/refund", "version": 4, "expected_version": 3},
            {"name": "support/tone", "version": 2, "expected_version": 1}]}]})
    label: str = Field(max_length=64)
    moves: list[ReleaseMoveIn] = Field(min_length=1, max_length=200)
    reason: str = REASON


class ReleaseCreated(ResponseModel):
    """Unprotected label: applied at once (`release_id`). Protected: a review request (`review_id`), 202."""

    release_id: str | None = None
    review_id: str | None = None
    status: str
    position: int


class RollbackIn(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "the spring release broke refunds"}]})
    reason: str = Field(min_length=1, max_length=2000, description="Why (kept with the rollback release and audited).")


class ReleaseOut(ResponseModel):
    id: str
    label: str
    moves: list[dict[str, Any]] = Field(description="{prompt_id, name, from, to}: from/to are {version, split} or null.")
    reason: str
    review_id: str | None
    rollback_of: str | None
    rolled_back_by: str | None
    created_at: Instant
    created_by: str
    position: int


class ReleaseList(ResponseModel):
    items: list[ReleaseOut]


class LabelEntry(ResponseModel):
    prompt_id: str
    name: str | None = Field(description="The prompt's current name.")
    version: int
    split: list[dict[str, int]] | None = None
    since: Instant = Field(description="When the label was moved there.")


class LabelSnapshot(ResponseModel):
    label: str
    as_of: Instant | None
    items: list[LabelEntry]
