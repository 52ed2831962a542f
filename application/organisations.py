"""Organisation commands: create, rename, plan, members and roles."""
from __future__ import annotations

from uuid import UUID

from application.base import BaseApp, request_fingerprint
from application.principal import Principal
from application.results import CommandResult
from domain.errors import Forbidden, Invalid, NotFound
from domain.ids import idempotent_id
from domain.organisation import Organisation
from domain.permissions import ROLE_PERMISSIONS, Permission, Role


class OrganisationCommands(BaseApp):
    def create_organisation(
        self, principal: Principal, name: str, request_id: str, idempotency_key: str | None = None
    ) -> CommandResult:
        if principal.user_id is None:
            raise Invalid("API keys cannot create organisations", code="USER_REQUIRED")
        def command() -> CommandResult:
            org_id, fingerprint, replay = self._idempotent(principal, "orgs", idempotency_key, {"name": name})
            if replay:
                return replay
            org = Organisation.create(org_id, name, principal.user_id, principal.actor, request_id, request_hash=fingerprint)
            return CommandResult(org.id, self._save(org))

        return self._retrying(command)

    def authorize(self, principal: Principal, org_id: UUID, permission: Permission | None = None) -> frozenset[str]:
        """The principal's permissions in the org (strongly consistent), for queries served from read models.

        NotFound outside the principal's tenancy (another tenant's org looks absent); Forbidden when
        `permission` is given and not held. Users: one load of the Organisation aggregate. API keys:
        no load at all, the key aggregate was read when the request authenticated, and a key's org and
        permissions never change after issue (orgs are never deleted)."""
        if principal.api_key_id is not None:
            if principal.key_org_id != org_id:
                raise NotFound("organisation not found", code="ORG_NOT_FOUND")
            if permission is not None and permission.value not in principal.key_permissions:
                raise Forbidden(f"API key lacks permission {permission.value!r}", code="PERMISSION_DENIED",
                                details={"required": permission.value})
            return principal.key_permissions
        org = self._org(org_id)
        if permission is not None:
            role = org.require(principal.user_id, permission)
        else:
            role = org.role_of(principal.user_id)
            if role is None:
                raise NotFound("organisation not found", code="ORG_NOT_FOUND")
        return frozenset(p.value for p in ROLE_PERMISSIONS[role])

    def update_organisation(
        self, principal: Principal, org_id: UUID, request_id: str, *, name: str | None = None, plan: str | None = None,
    ) -> CommandResult:
        """Rename and/or change plan in one atomic save (both need org:manage)."""
        def command() -> CommandResult:
            org, _ = self._authorize(principal, org_id, Permission.ORG_MANAGE)
            if plan is not None:
                org.change_plan(plan, principal.actor, request_id)
            if name is not None:
                org.rename(name, principal.actor, request_id)
            return CommandResult(org_id, self._save(org))

        return self._retrying(command)

    def get_organisation(self, principal: Principal, org_id: UUID) -> Organisation:
        org, _ = self._authorize(principal, org_id, Permission.PROMPTS_READ)
        return org

    def rename_organisation(self, principal: Principal, org_id: UUID, name: str, request_id: str) -> CommandResult:
        def command() -> CommandResult:
            org, _ = self._authorize(principal, org_id, Permission.ORG_MANAGE)
            org.rename(name, principal.actor, request_id)
            return CommandResult(org_id, self._save(org))

        return self._retrying(command)

    def change_plan(self, principal: Principal, org_id: UUID, plan: str, request_id: str) -> CommandResult:
        def command() -> CommandResult:
            org, _ = self._authorize(principal, org_id, Permission.ORG_MANAGE)
            org.change_plan(plan, principal.actor, request_id)
            return CommandResult(org_id, self._save(org))

        return self._retrying(command)

    def add_member(
        self, principal: Principal, org_id: UUID, role: str, request_id: str,
        *, user_id: UUID | None = None, email: str | None = None, idempotency_key: str | None = None,
    ) -> CommandResult:
        fingerprint = request_fingerprint({"role": role, "user_id": user_id, "email": email})
        token = idempotent_id(principal.actor, f"org:{org_id}:members", idempotency_key).hex if idempotency_key else ""

        def command() -> CommandResult:
            org, by_role = self._authorize(principal, org_id, Permission.MEMBERS_MANAGE)
            if token and (done := org.member_added_for(token, fingerprint)) is not None:
                return CommandResult(UUID(done), self.head_position(), replayed=True)
            target = user_id or (self.find_user_id(email) if email else None)
            if target is None or not self._exists(target):
                raise NotFound("no user with that email or id", code="USER_NOT_FOUND")
            org.add_member(target, role, self._effective_role(by_role), principal.actor, request_id,
                           idempotency=token, request_hash=fingerprint)
            return CommandResult(target, self._save(org))

        return self._retrying(command)

    def change_member_role(
        self, principal: Principal, org_id: UUID, user_id: UUID, role: str, request_id: str
    ) -> CommandResult:
        def command() -> CommandResult:
            org, by_role = self._authorize(principal, org_id, Permission.MEMBERS_MANAGE)
            org.change_role(user_id, role, self._effective_role(by_role), principal.actor, request_id)
            return CommandResult(user_id, self._save(org))

        return self._retrying(command)

    def remove_member(self, principal: Principal, org_id: UUID, user_id: UUID, request_id: str) -> CommandResult:
        def command() -> CommandResult:
            org, by_role = self._authorize(principal, org_id, Permission.MEMBERS_MANAGE)
            org.remove_member(user_id, self._effective_role(by_role), principal.actor, request_id)
            return CommandResult(user_id, self._save(org))

        return self._retrying(command)

    @staticmethod
    def _effective_role(role: Role | None) -> Role:
        """API keys with members:manage act with admin rights at most (never owner)."""
        return role or Role.ADMIN
