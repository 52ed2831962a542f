"""Review requests: open and decided requests per organisation and per prompt, with their history."""
from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String, Table, Text, exists

from domain.review import ReviewRequest
from projections.base import Projection, json_safe
from projections.batch import Unit
from projections.db import metadata
from projections.events import Envelope
from projections.paging import clamp
from projections.tenancy import of_org, rows_of

reviews = Table(
    "rm_reviews", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("review_id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("label", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("moves", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(80), nullable=False),
    Column("requester", String(80), nullable=False),
    Column("approvals_required", Integer, nullable=False),
    Column("approver_roles", JSON, nullable=False),
    #: [{by (actor), approver (person), comment, at}]
    Column("approvals", JSON, nullable=False),
    Column("decided_by", String(80), nullable=True),
    Column("comment", Text, nullable=True),
    Column("conflicts", JSON, nullable=True),
    Column("release_id", String(36), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_rm_reviews_org_status", "org_id", "status", "position"),
)
review_prompts = Table(
    "rm_review_prompts", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("review_id", String(36), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Index("ix_rm_review_prompts_prompt", "org_id", "prompt_id"),
)


class Reviews(Projection):
    name = "reviews"
    tables = (reviews, review_prompts)
    appended = (review_prompts,)
    sql_null = {reviews: ("conflicts",)}

    def prepare(self, unit: Unit, batch: Sequence[Envelope]) -> None:
        for env in batch:
            if isinstance(env.event, ReviewRequest.Event) and not isinstance(env.event, ReviewRequest.Requested):
                unit[reviews].need((env.org_id, env.target_id))

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, unit: Unit) -> None:
        pass

    @when.register
    def _(self, event: ReviewRequest.Requested, env: Envelope, unit: Unit) -> None:
        unit[reviews].insert(dict(
            org_id=env.org_id, review_id=env.target_id, kind=event.kind, label=event.label, status="open",
            moves=json_safe(event.moves), reason=event.reason, requested_by=env.actor, requester=event.requester,
            approvals_required=event.approvals_required, approver_roles=list(event.approver_roles), approvals=[],
            release_id=event.release_id or None, created_at=env.at, updated_at=env.at, position=env.position))
        prompt_ids = sorted({m["prompt_id"] for m in event.moves})
        unit[review_prompts].extend({"org_id": env.org_id, "review_id": env.target_id, "prompt_id": p}
                                    for p in prompt_ids)

    @when.register
    def _(self, event: ReviewRequest.Approved, env: Envelope, unit: Unit) -> None:
        row = unit[reviews].get(self._key(env))
        if row is None:
            raise LookupError(f"reviews: no review {env.target_id} to approve (position {env.position})")
        approval = {"by": env.actor, "approver": event.approver, "comment": event.comment, "at": env.at.isoformat()}
        self._touch(unit, env, approvals=[*row["approvals"], approval])

    @when.register
    def _(self, event: ReviewRequest.Rejected, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, status="rejected", decided_by=env.actor, comment=event.comment)

    @when.register
    def _(self, event: ReviewRequest.Withdrawn, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, status="withdrawn", decided_by=env.actor)

    @when.register
    def _(self, event: ReviewRequest.Applied, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, status="applied", decided_by=env.actor, release_id=event.release_id or None)

    @when.register
    def _(self, event: ReviewRequest.Superseded, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, status="superseded", decided_by=env.actor, conflicts=json_safe(event.conflicts))

    @staticmethod
    def _key(env: Envelope) -> tuple[str, str]:
        return env.org_id, env.target_id

    def _touch(self, unit: Unit, env: Envelope, **values: Any) -> None:
        unit[reviews].update(self._key(env), updated_at=env.at, position=env.position, **values)

    # -- queries ----------------------------------------------------------------------------
    def list(self, org_id: str, *, status: str | None = None, prompt_id: str | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        query = rows_of(reviews, org_id)
        if status:
            query = query.where(reviews.c.status == status)
        if prompt_id:
            query = query.where(exists().where(of_org(review_prompts, org_id),
                                               review_prompts.c.review_id == reviews.c.review_id,
                                               review_prompts.c.prompt_id == str(prompt_id)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(reviews.c.created_at.desc(), reviews.c.review_id).limit(clamp(limit)))]

    def get(self, org_id: str, review_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(rows_of(reviews, org_id).where(reviews.c.review_id == str(review_id))).first()
        return dict(row._mapping) if row else None
