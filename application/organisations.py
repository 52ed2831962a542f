"""Organisation commands: create, rename / change plan, members and roles."""
from __future__ import annotations

from contextlib import nullcontext
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from application.base import BaseApp, request_fingerprint
from application.commands import command
from application.principal import Principal
from application.results import CommandResult
from domain.errors import Forbidden, NotFound
from domain.ids import idempotent_id
from domain.organisation import Organisation
from domain.permissions import Permission
from domain.quota import PromptQuota
from domain.user import User


def user_not_found() -> NotFound:
    return NotFound("no user with that email or id", code="USER_NOT_FOUND")


class OrganisationCommands(BaseApp):
    @command
    def create_organisation(
        self, principal: Principal, name: str, request_id: str, idempotency_key: str | None = None
    ) -> CommandResult:
        if principal.user_id is None:
            raise Forbidden("API keys cannot create organisations", code="USER_TOKEN_REQUIRED")
        org_id, fingerprint, replay = self._idempotent(principal, "orgs", idempotency_key, {"name": name})
        if replay:
            return replay
        org = Organisation.create(org_id, name, principal.user_id, request_hash=fingerprint)
        return CommandResult(org.id, self._save(org, PromptQuota.open(org.id, org.plan)))

    @command(serialise="org_id")
    def update_organisation(
        self, principal: Principal, org_id: UUID, request_id: str, *, name: str | None = None, plan: str | None = None,
        protected_labels: list[str] | None = None, review_policies: dict[str, dict] | None = None,
    ) -> CommandResult:
        """Rename, change plan and/or the protected labels (with their review policies) in one
        atomic save (all need org:manage)."""
        org = self.grant(principal, org_id, Permission.ORG_MANAGE).org
        # A plan change is saved with the prompt quota's (adr/0025): a creation that races it
        # collides in the event store instead of passing a limit the new plan no longer allows.
        with self.quota_lock(org_id) if plan is not None else nullcontext():
            quota = self._prompt_quota(org) if plan is not None else None
            if quota is not None:
                org.change_plan(plan, prompts=quota.count)
                quota.set_plan(org.plan)
            if name is not None:
                org.rename(name)
            if protected_labels is not None or review_policies is not None:
                org.protect_labels(org.protected_labels if protected_labels is None else protected_labels,
                                   review_policies)
            return CommandResult(org_id, self._save(org, *([quota] if quota is not None else [])))

    def get_organisation(self, principal: Principal, org_id: UUID) -> Organisation:
        return self.grant(principal, org_id, Permission.PROMPTS_READ).org

    def prompts_used(self, org: Organisation) -> int:
        """The organisation's prompt count, as its plan's limit counts it (strongly consistent)."""
        try:
            return self.repository.get(PromptQuota.id_for(org.id)).count
        except AggregateNotFoundError:  # not opened yet: the count its own stream kept (adr/0025)
            return org.prompt_count

    @command(serialise="org_id")
    def add_member(
        self, principal: Principal, org_id: UUID, role: str, request_id: str,
        *, user_id: UUID | None = None, email: str | None = None, idempotency_key: str | None = None,
    ) -> CommandResult:
        fingerprint = request_fingerprint({"role": role, "user_id": user_id, "email": email})
        token = idempotent_id(principal.actor, f"org:{org_id}:members", idempotency_key).hex if idempotency_key else ""
        grant = self.grant(principal, org_id, Permission.MEMBERS_MANAGE)
        org = grant.org
        if token and (done := org.member_added_for(token, fingerprint)) is not None:
            return CommandResult(UUID(done), self.head_position(), replayed=True)
        target = user_id or (self.find_user_id(email) if email else None)
        if target is None:
            raise user_not_found()
        self._load(target, User, user_not_found)  # an id of anything but a user names no user
        org.add_member(target, role, grant.acting_role, idempotency=token, request_hash=fingerprint)
        return CommandResult(target, self._save(org))

    @command(serialise="org_id")
    def change_member_role(
        self, principal: Principal, org_id: UUID, user_id: UUID, role: str, request_id: str
    ) -> CommandResult:
        grant = self.grant(principal, org_id, Permission.MEMBERS_MANAGE)
        grant.org.change_role(user_id, role, grant.acting_role)
        return CommandResult(user_id, self._save(grant.org))

    @command(serialise="org_id")
    def remove_member(self, principal: Principal, org_id: UUID, user_id: UUID, request_id: str) -> CommandResult:
        grant = self.grant(principal, org_id, Permission.MEMBERS_MANAGE)
        grant.org.remove_member(user_id, grant.acting_role)
        return CommandResult(user_id, self._save(grant.org))
