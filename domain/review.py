"""Review requests: the four-eyes gate in front of protected labels.

A member (or key) with `prompts:promote` requests a change of a protected label: one prompt's label
(`kind: "label"`), or several prompts at once (`kind: "release"`, or the rollback of a release). Someone
else with `prompts:review` and an approving role approves or rejects it with a comment. When the
approvals reach the label's quorum, the application applies the change in the same atomic save as
the last approval, with the compare-and-set recorded in the request: if a label moved meanwhile,
nothing is applied and the request is superseded.

"Someone else" is about people: the requester is the user answerable for the request (for an API
key, the member who issued it), so a requester can approve neither with their own account nor with
a key they issued."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.base import AuditedAggregate
from domain.errors import Conflict, Forbidden, Invalid
from domain.values import clean_message

KINDS = ("label", "release", "rollback")
OPEN = "open"
STATUSES = ("open", "applied", "rejected", "withdrawn", "superseded")
MAX_REASON = 2_000


def clean_reason(text: str | None, what: str = "reason") -> str:
    value = clean_message(text or "")
    if len(value) > MAX_REASON:
        raise Invalid(f"{what} must be at most {MAX_REASON} characters", code="INVALID_MESSAGE")
    return value


class ReviewRequest(AuditedAggregate):
    class Requested(AuditedAggregate.Created):
        org_id: UUID
        kind: str
        label: str
        #: [{prompt_id, name, version (None: remove the label), split, expected_version}]
        moves: list[dict[str, Any]]
        reason: str
        #: The user answerable for the request (the issuer, for an API key).
        requester: str
        approvals_required: int
        approver_roles: list[str]
        #: The release a rollback request undoes ("" otherwise).
        release_id: str

        def apply(self, review: "ReviewRequest") -> None:
            review.org_id = self.org_id
            review.kind = self.kind
            review.label = self.label
            review.moves = [dict(m) for m in self.moves]
            review.reason = self.reason
            review.requested_by = self.actor
            review.requester = self.requester
            review.approvals_required = self.approvals_required
            review.approver_roles = list(self.approver_roles)
            review.release_id = self.release_id
            review.status = OPEN
            review.approvals = []
            review.decided_by = ""
            review.comment = ""

    class Approved(AuditedAggregate.Event):
        org_id: UUID
        approver: str
        comment: str

        def apply(self, review: "ReviewRequest") -> None:
            review.approvals.append({"by": self.actor, "approver": self.approver, "comment": self.comment,
                                     "at": self.timestamp})

    class Rejected(AuditedAggregate.Event):
        org_id: UUID
        approver: str
        comment: str

        def apply(self, review: "ReviewRequest") -> None:
            review.status = "rejected"
            review.decided_by = self.actor
            review.comment = self.comment

    class Withdrawn(AuditedAggregate.Event):
        org_id: UUID

        def apply(self, review: "ReviewRequest") -> None:
            review.status = "withdrawn"
            review.decided_by = self.actor

    class Applied(AuditedAggregate.Event):
        org_id: UUID
        #: The release the change was recorded as ("" for a single label move).
        release_id: str

        def apply(self, review: "ReviewRequest") -> None:
            review.status = "applied"
            review.applied_release = self.release_id

    class Superseded(AuditedAggregate.Event):
        """A label moved after the request was made: applying it would overwrite that move."""

        org_id: UUID
        conflicts: list[dict[str, Any]]

        def apply(self, review: "ReviewRequest") -> None:
            review.status = "superseded"
            review.conflicts = [dict(c) for c in self.conflicts]

    @classmethod
    def request(cls, id: UUID, org_id: UUID, kind: str, label: str, moves: list[dict[str, Any]], reason: str,
                requester: str, approvals_required: int, approver_roles: list[str],
                release_id: str = "") -> "ReviewRequest":
        if kind not in KINDS:
            raise Invalid(f"kind must be one of {', '.join(KINDS)}", code="VALIDATION_ERROR")
        if not moves:
            raise Invalid("a request names at least one move", code="INVALID_MOVES")
        return cls._create(cls.Requested, id=id, org_id=org_id, kind=kind, label=label, moves=moves,
                           reason=clean_reason(reason), requester=requester, approvals_required=approvals_required,
                           approver_roles=sorted(approver_roles), release_id=release_id)

    # -- decisions --------------------------------------------------------------------------
    def approve(self, approver: str, role: str, comment: str) -> bool:
        """Record an approval by `approver` (the user answerable for it) acting with `role`.
        Returns True when the quorum is reached (the application then applies the change)."""
        self._require_open()
        self._require_other_than_requester(approver)
        if role not in self.approver_roles:
            raise Forbidden(f"role {role!r} may not approve changes of {self.label!r}", code="APPROVER_ROLE_REQUIRED",
                            details={"role": role, "allowed": self.approver_roles})
        if any(a["approver"] == approver for a in self.approvals):
            raise Conflict("you already approved this request", code="ALREADY_APPROVED")
        self.trigger_event(self.Approved, org_id=self.org_id, approver=approver,
                           comment=clean_reason(comment, "comment"))
        return len(self.approvals) >= self.approvals_required

    def reject(self, approver: str, role: str, comment: str) -> None:
        self._require_open()
        self._require_other_than_requester(approver)
        if role not in self.approver_roles:
            raise Forbidden(f"role {role!r} may not review changes of {self.label!r}", code="APPROVER_ROLE_REQUIRED",
                            details={"role": role, "allowed": self.approver_roles})
        self.trigger_event(self.Rejected, org_id=self.org_id, approver=approver,
                           comment=clean_reason(comment, "comment"))

    def withdraw(self, by: str) -> None:
        self._require_open()
        if by != self.requester:
            raise Forbidden("only the requester may withdraw a request", code="NOT_THE_REQUESTER")
        self.trigger_event(self.Withdrawn, org_id=self.org_id)

    def applied(self, release_id: str = "") -> None:
        self.trigger_event(self.Applied, org_id=self.org_id, release_id=release_id)

    def supersede(self, conflicts: list[dict[str, Any]]) -> None:
        self._require_open()
        self.trigger_event(self.Superseded, org_id=self.org_id, conflicts=conflicts)

    def _require_open(self) -> None:
        if self.status != OPEN:
            raise Conflict(f"the request is {self.status}", code="REVIEW_NOT_OPEN", details={"status": self.status})

    def _require_other_than_requester(self, approver: str) -> None:
        if approver == self.requester:
            raise Forbidden("the requester (or a key they issued) cannot review their own request",
                            code="SELF_APPROVAL")
