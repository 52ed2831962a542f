"""Governance commands: protected labels, review requests (four eyes), releases and rollbacks.

- A protected label (an organisation setting, `production` by default) is never moved directly:
  `move_label`/`remove_label` refuse it (409 `LABEL_PROTECTED`), whoever asks and through whatever
  interface, since every interface calls these commands.
- A change of a protected label is requested (`prompts:promote`) and approved by someone else
  (`prompts:review`, an approving role, never the requester nor a key they issued). The approval that
  reaches the quorum applies the change in the same atomic save, with the compare-and-set the request
  recorded: if a label moved meanwhile, nothing moves and the request is superseded (409).
- A release moves one label of several prompts in one save, all or none (409 `RELEASE_CONFLICT`
  listing every conflicting prompt), and is recorded so it can be rolled back as one step. On a
  protected label both go through a review request.
"""
from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from application.base import BaseApp
from application.commands import command
from application.principal import Principal
from application.results import CommandResult
from domain.errors import Conflict, DomainError, Invalid, NotFound
from domain.ids import prompt_name_index_id
from domain.permissions import Permission, label_permission
from domain.prompt import Prompt
from domain.release import Release
from domain.review import ReviewRequest
from domain.splits import clean_split
from domain.values import clean_label, clean_prompt_name

MAX_MOVES = 200


def review_not_found() -> NotFound:
    return NotFound("review request not found", code="REVIEW_NOT_FOUND")


def release_not_found() -> NotFound:
    return NotFound("release not found", code="RELEASE_NOT_FOUND")


class GovernanceCommands(BaseApp):
    # -- review requests --------------------------------------------------------------------
    @command
    def request_review(self, principal: Principal, org_id: UUID, *, prompt_id: UUID, label: str,
                       version: int | None = None, split: list | None = None, expected_version: int | None,
                       reason: str = "", request_id: str, remove: bool = False) -> CommandResult:
        """Ask for one protected label of one prompt to point at `version` (or a `split`), or to be
        removed (`remove`), expecting it to point at `expected_version` now (0 = unset)."""
        label = clean_label(label)
        grant = self.grant(principal, org_id, Permission.PROMPTS_PROMOTE)
        org = grant.org
        if not org.is_protected(label):
            raise Conflict(f"label {label!r} is not protected: move it directly", code="LABEL_NOT_PROTECTED",
                           details={"label": label})
        prompt = self._prompt(org_id, prompt_id)
        move = self._checked_move(prompt, label, None if remove else version, None if remove else split,
                                  expected_version, remove)
        policy = org.review_policy(label)
        review = ReviewRequest.request(uuid4(), org_id, "label", label, [move], reason, grant.answerable,
                                       policy["approvals"], policy["approver_roles"])
        return CommandResult(review.id, self._save(review))

    @command
    def approve_review(self, principal: Principal, org_id: UUID, review_id: UUID, comment: str,
                       request_id: str) -> CommandResult:
        """Approve; the approval reaching the quorum applies the change atomically. `data["status"]`
        is the request's status afterwards ("open" while approvals are missing, "applied")."""
        grant = self.grant(principal, org_id, Permission.PROMPTS_REVIEW)
        review = self._review(org_id, review_id)
        role = grant.answerable_role.value if grant.answerable_role else ""
        if not review.approve(grant.answerable, role, comment):
            return CommandResult(review_id, self._save(review), data={"status": review.status})
        approvers = [a["approver"] for a in review.approvals]
        meta = {"review_id": str(review_id), "requested_by": review.requester, "approved_by": approvers}
        try:
            changed, release = self._apply(org_id, review, meta)
        except _Stale as stale:
            fresh = self._review(org_id, review_id)  # without the pending approval
            fresh.supersede(stale.conflicts)
            position = self._save(fresh)
            raise Conflict("a label moved since the request was made; nothing was applied and the request is "
                           "superseded", code="REVIEW_SUPERSEDED",
                           details={"conflicts": stale.conflicts, "position": position}) from None
        review.applied(str(release.id) if release else "")
        return CommandResult(review_id, self._save(review, *changed, *([release] if release else [])),
                             data={"status": review.status, "release_id": str(release.id) if release else None})

    @command
    def reject_review(self, principal: Principal, org_id: UUID, review_id: UUID, comment: str,
                      request_id: str) -> CommandResult:
        grant = self.grant(principal, org_id, Permission.PROMPTS_REVIEW)
        review = self._review(org_id, review_id)
        review.reject(grant.answerable, grant.answerable_role.value if grant.answerable_role else "", comment)
        return CommandResult(review_id, self._save(review), data={"status": review.status})

    @command
    def withdraw_review(self, principal: Principal, org_id: UUID, review_id: UUID, request_id: str) -> CommandResult:
        grant = self.grant(principal, org_id, Permission.PROMPTS_READ)
        review = self._review(org_id, review_id)
        review.withdraw(grant.answerable)
        return CommandResult(review_id, self._save(review), data={"status": review.status})

    # -- releases ---------------------------------------------------------------------------
    @command
    def create_release(self, principal: Principal, org_id: UUID, *, label: str, moves: list[dict[str, Any]],
                       reason: str = "", request_id: str) -> CommandResult:
        """Move `label` of several prompts in one step. `moves`: [{prompt_id or name, version or
        split, expected_version}]. Unprotected label: applied now (`data["release_id"]`); protected:
        a review request is opened instead (`data["review_id"]`, nothing moves yet)."""
        label = clean_label(label)
        grant = self._label_grant(principal, org_id, label)
        org = grant.org
        if not isinstance(moves, list) or not 1 <= len(moves) <= MAX_MOVES:
            raise Invalid(f"a release has 1..{MAX_MOVES} moves", code="INVALID_MOVES")
        prompts, checked, conflicts = [], [], []
        for index, move in enumerate(moves):
            prompt = self._prompt(org_id, self._move_prompt_id(org_id, move, index))
            if any(p.id == prompt.id for p in prompts):
                raise Invalid(f"move {index}: the prompt appears twice", code="INVALID_MOVES", details={"index": index})
            try:
                checked.append(self._checked_move(prompt, label, move.get("version"), move.get("split"),
                                                  move.get("expected_version"), False))
            except Conflict as exc:
                conflicts.append({"prompt_id": str(prompt.id), "name": prompt.name, **exc.details})
            prompts.append(prompt)
        if conflicts:
            raise Conflict("labels moved since these expectations: nothing was applied", code="RELEASE_CONFLICT",
                           details={"conflicts": conflicts})
        if org.is_protected(label):
            policy = org.review_policy(label)
            review = ReviewRequest.request(uuid4(), org_id, "release", label, checked, reason, grant.answerable,
                                           policy["approvals"], policy["approver_roles"])
            return CommandResult(review.id, self._save(review), data={"review_id": str(review.id)})
        release = self._release(org_id, label, prompts, checked, reason, meta=None)
        return CommandResult(release.id, self._save(*prompts, release), data={"release_id": str(release.id)})

    @command
    def rollback_release(self, principal: Principal, org_id: UUID, release_id: UUID, request_id: str,
                         reason: str = "") -> CommandResult:
        """Undo a release as one step: every label back to what it pointed at before, expecting what
        the release set (so a later move is not overwritten). Protected label: via review."""
        original = self._load(release_id, Release, release_not_found)
        if original.org_id != org_id:
            raise release_not_found()
        grant = self._label_grant(principal, org_id, original.label)
        moves = [self._rollback_move(m) for m in original.rollback_moves()]
        if grant.org.is_protected(original.label):
            policy = grant.org.review_policy(original.label)
            review = ReviewRequest.request(uuid4(), org_id, "rollback", original.label, moves,
                                           reason or f"roll back release {release_id}", grant.answerable,
                                           policy["approvals"], policy["approver_roles"], release_id=str(release_id))
            return CommandResult(review.id, self._save(review), data={"review_id": str(review.id)})
        prompts = [self._prompt(org_id, UUID(m["prompt_id"])) for m in moves]
        try:
            changed = self._move_all(prompts, original.label, moves, meta=None)
        except _Stale as stale:
            raise Conflict("labels moved since the release: nothing was rolled back", code="RELEASE_CONFLICT",
                           details={"conflicts": stale.conflicts}) from None
        rollback = Release.record(uuid4(), org_id, original.label, self._recorded(moves), reason or "rollback",
                                  rollback_of=str(release_id))
        original.rolled_back(str(rollback.id))
        return CommandResult(rollback.id, self._save(*changed, rollback, original),
                             data={"release_id": str(rollback.id)})

    # -- helpers ----------------------------------------------------------------------------
    def _label_grant(self, principal: Principal, org_id: UUID, label: str):
        """Moving a label needs its permission; a protected label (any, not only production) needs
        prompts:promote, as a review request for it does."""
        grant = self.grant(principal, org_id, label_permission(label))
        if grant.org.is_protected(label):
            grant = self.grant(principal, org_id, Permission.PROMPTS_PROMOTE)
        return grant

    def _review(self, org_id: UUID, review_id: UUID) -> ReviewRequest:
        review = self._load(review_id, ReviewRequest, review_not_found)
        if review.org_id != org_id:
            raise review_not_found()
        return review

    def _move_prompt_id(self, org_id: UUID, move: dict[str, Any], index: int) -> UUID:
        if move.get("prompt_id"):
            return UUID(str(move["prompt_id"]))
        if move.get("name"):
            holder = self._name_holder(prompt_name_index_id(org_id, clean_prompt_name(move["name"])))
            if holder is None:
                raise NotFound(f"move {index}: no prompt named {move['name']!r}", code="PROMPT_NOT_FOUND",
                               details={"index": index})
            return holder
        raise Invalid(f"move {index} names no prompt (prompt_id or name)", code="INVALID_MOVES", details={"index": index})

    @staticmethod
    def _checked_move(prompt: Prompt, label: str, version: int | None, split: list | None,
                      expected_version: int | None, remove: bool) -> dict[str, Any]:
        """A move as a request records it, validated against the prompt now: the target exists and
        the label points at `expected_version` (Conflict LABEL_CONFLICT otherwise)."""
        if prompt.archived:
            raise Conflict("an archived prompt cannot be changed; restore it first", code="PROMPT_ARCHIVED")
        if not remove:
            if (version is None) == (split is None):
                raise Invalid("give a version or a split", code="INVALID_SPLIT")
            if split is not None:
                split = clean_split(split)
                for entry in split:
                    prompt.get_version(entry["version"])
            else:
                prompt.get_version(version)
        current = prompt.labels.get(label)
        if expected_version is None:
            raise Invalid("expected_version is required (0 when the label is not set)", code="EXPECTED_VERSION_REQUIRED")
        if (current or 0) != expected_version:
            raise Conflict(f"label {label!r} does not point at version {expected_version}", code="LABEL_CONFLICT",
                           details={"label": label, "expected_version": expected_version, "current_version": current})
        if remove and current is None:
            raise NotFound(f"label {label!r} is not set", code="LABEL_NOT_FOUND", details={"label": label})
        return {"prompt_id": str(prompt.id), "name": prompt.name, "version": None if remove else version,
                "split": split, "expected_version": expected_version,
                "from": prompt.label_target(label)}

    def _apply(self, org_id: UUID, review: ReviewRequest, meta: dict[str, Any]) -> tuple[list, Release | None]:
        prompts = [self._prompt(org_id, UUID(m["prompt_id"])) for m in review.moves]
        changed = self._move_all(prompts, review.label, review.moves, meta)
        if review.kind == "label":
            return changed, None
        release = self._release(org_id, review.label, prompts, review.moves, review.reason, meta,
                                rollback_of=review.release_id)
        if review.kind == "rollback":
            original = self._load(UUID(review.release_id), Release, release_not_found)
            original.rolled_back(str(release.id))
            changed.append(original)
        return changed, release

    @staticmethod
    def _move_all(prompts: list[Prompt], label: str, moves: list[dict[str, Any]],
                  meta: dict[str, Any] | None) -> list[Prompt]:
        """Apply every move (compare-and-set each), or raise _Stale listing every conflict."""
        conflicts = []
        for prompt, move in zip(prompts, moves):
            # What the label pointed at when the request or release was made, split weights included
            # (expected_version alone names only a split's primary version).
            if "from" in move and _target(prompt.label_target(label)) != _target(move["from"]):
                conflicts.append({"prompt_id": str(prompt.id), "name": prompt.name, "code": "LABEL_CONFLICT",
                                  "label": label, "expected_version": move["expected_version"],
                                  "current_version": prompt.labels.get(label), "expected": move["from"],
                                  "current": prompt.label_target(label)})
                continue
            try:
                if move["version"] is None and move["split"] is None:
                    prompt.remove_label(label, move["expected_version"] or None, review=meta)
                else:
                    prompt.move_label(label, move["version"], move["expected_version"], split=move["split"],
                                      review=meta)
            except (Conflict, NotFound) as exc:
                conflicts.append({"prompt_id": str(prompt.id), "name": prompt.name, "code": exc.code, **exc.details})
            except DomainError:
                raise
        if conflicts:
            raise _Stale(conflicts)
        return prompts

    def _release(self, org_id: UUID, label: str, prompts: list[Prompt], moves: list[dict[str, Any]], reason: str,
                 meta: dict[str, Any] | None, rollback_of: str = "") -> Release:
        if meta is None:
            self._move_all(prompts, label, moves, None)
        return Release.record(uuid4(), org_id, label, self._recorded(moves), reason,
                              review_id=(meta or {}).get("review_id", ""), rollback_of=rollback_of)

    @staticmethod
    def _recorded(moves: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"prompt_id": m["prompt_id"], "name": m["name"], "from": m["from"],
                 "to": None if m["version"] is None and m["split"] is None else
                 {"version": m["version"] if m["split"] is None else None, "split": m["split"]}}
                for m in moves]

    @staticmethod
    def _rollback_move(m: dict[str, Any]) -> dict[str, Any]:
        target, expected = m["target"], m["expected"]
        expected_version = 0
        if expected is not None:
            expected_version = expected["version"] if expected["split"] is None else _primary(expected["split"])
        return {"prompt_id": m["prompt_id"], "name": m["name"],
                "version": None if target is None else (target["version"] if target["split"] is None else None),
                "split": None if target is None else target["split"], "expected_version": expected_version,
                "from": expected}


def _target(target: dict[str, Any] | None) -> dict[str, Any] | None:
    """A recorded label target in the shape Prompt.label_target answers (events store plain JSON)."""
    if target is None:
        return None
    split = target.get("split")
    if not split:
        return {"version": target.get("version"), "split": None}
    entries = [{"version": e["version"], "weight": e["weight"]} for e in split]
    return {"version": _primary(entries), "split": entries}


def _primary(split: list[dict[str, int]]) -> int:
    from domain.splits import primary

    return primary(split)


class _Stale(Exception):
    def __init__(self, conflicts: list[dict[str, Any]]):
        super().__init__("stale label expectations")
        self.conflicts = conflicts
