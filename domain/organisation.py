"""Organisations: the tenant. Members, roles, plan and the plan's usage counters."""
from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import Conflict, Forbidden, LimitExceeded, NotFound
from domain.permissions import PLAN_LIMITS, ROLE_PERMISSIONS, Permission, Plan, Role, parse_plan, parse_role
from domain.values import clean_name


class Organisation(Aggregate):
    """Membership and roles are read from here to authorise every command (strongly consistent)."""

    @event("Created")
    def __init__(self, id: UUID, name: str, plan: str, owner_id: UUID, actor: str, request_id: str, request_hash: str):
        self.name = name
        self.request_hash = request_hash
        self.plan = plan
        self.members: dict[str, str] = {str(owner_id): Role.OWNER.value}
        self.prompt_count = 0
        self.active_api_keys = 0
        #: Members added under an Idempotency-Key: token -> (user id, request fingerprint).
        self.idempotent_members: dict[str, tuple[str, str]] = {}

    @classmethod
    def create(cls, id: UUID, name: str, owner_id: UUID, actor: str, request_id: str, plan: str = "FREE",
               request_hash: str = "") -> "Organisation":
        return cls(
            id=id, name=clean_name(name, what="organisation name"), plan=parse_plan(plan).value,
            owner_id=owner_id, actor=actor, request_id=request_id, request_hash=request_hash,
        )

    # -- queries on state -------------------------------------------------------------------
    @property
    def org_id(self) -> UUID:
        return self.id

    @property
    def limits(self):
        return PLAN_LIMITS[Plan(self.plan)]

    def role_of(self, user_id: UUID) -> Role | None:
        role = self.members.get(str(user_id))
        return Role(role) if role else None

    def owners(self) -> list[str]:
        return [u for u, r in self.members.items() if r == Role.OWNER.value]

    def require(self, user_id: UUID, permission: Permission) -> Role:
        """The member's role if it grants `permission`; non-members get NotFound (no existence leak)."""
        role = self.role_of(user_id)
        if role is None:
            raise NotFound("organisation not found", code="ORG_NOT_FOUND")
        if permission not in ROLE_PERMISSIONS[role]:
            raise Forbidden(
                f"role {role.value!r} lacks permission {permission.value!r}",
                code="PERMISSION_DENIED",
                details={"required": permission.value, "role": role.value},
            )
        return role

    # -- commands ---------------------------------------------------------------------------
    def rename(self, name: str, actor: str, request_id: str) -> None:
        name = clean_name(name, what="organisation name")
        if name != self.name:
            self._renamed(name=name, actor=actor, request_id=request_id)

    def change_plan(self, plan: str, actor: str, request_id: str) -> None:
        new = parse_plan(plan)
        limits = PLAN_LIMITS[new]
        if len(self.members) > limits.members or self.prompt_count > limits.prompts or self.active_api_keys > limits.api_keys:
            raise LimitExceeded(
                "current usage exceeds the target plan's limits",
                code="PLAN_DOWNGRADE_BLOCKED",
                details={"members": len(self.members), "prompts": self.prompt_count, "api_keys": self.active_api_keys},
            )
        if new.value != self.plan:
            self._plan_changed(plan=new.value, actor=actor, request_id=request_id)

    def member_added_for(self, idempotency: str, request_hash: str) -> str | None:
        """The user an earlier add under this idempotency token added, if any (same token, other
        request: conflict)."""
        if idempotency not in self.idempotent_members:
            return None
        user_id, fingerprint = self.idempotent_members[idempotency]
        if fingerprint != request_hash:
            raise Conflict("Idempotency-Key was used with a different request", code="IDEMPOTENCY_KEY_REUSED")
        return user_id

    def add_member(self, user_id: UUID, role: str, by_role: Role, actor: str, request_id: str,
                   idempotency: str = "", request_hash: str = "") -> None:
        new_role = parse_role(role)
        self._guard_owner_grant(by_role, new_role)
        if str(user_id) in self.members:
            raise Conflict("user is already a member", code="MEMBER_EXISTS", details={"user_id": str(user_id)})
        if len(self.members) >= self.limits.members:
            raise LimitExceeded("member limit of the plan reached", details={"resource": "members", "limit": self.limits.members})
        self._member_added(user_id=user_id, role=new_role.value, actor=actor, request_id=request_id,
                           idempotency=idempotency, request_hash=request_hash)

    def change_role(self, user_id: UUID, role: str, by_role: Role, actor: str, request_id: str) -> None:
        new_role = parse_role(role)
        current = self._member_role(user_id)
        self._guard_owner_grant(by_role, new_role)
        self._guard_owner_grant(by_role, current)
        if current == new_role:
            return
        if current == Role.OWNER and len(self.owners()) == 1:
            raise Conflict("the last owner cannot be demoted", code="LAST_OWNER")
        self._member_role_changed(
            user_id=user_id, old_role=current.value, new_role=new_role.value, actor=actor, request_id=request_id
        )

    def remove_member(self, user_id: UUID, by_role: Role, actor: str, request_id: str) -> None:
        current = self._member_role(user_id)
        self._guard_owner_grant(by_role, current)
        if current == Role.OWNER and len(self.owners()) == 1:
            raise Conflict("the last owner cannot be removed", code="LAST_OWNER")
        self._member_removed(user_id=user_id, role=current.value, actor=actor, request_id=request_id)

    def reserve_prompt(self, prompt_id: UUID, actor: str, request_id: str) -> None:
        if self.prompt_count >= self.limits.prompts:
            raise LimitExceeded("prompt limit of the plan reached", details={"resource": "prompts", "limit": self.limits.prompts})
        self._prompt_added(prompt_id=prompt_id, actor=actor, request_id=request_id)

    def reserve_api_key(self, key_id: UUID, actor: str, request_id: str) -> None:
        if self.active_api_keys >= self.limits.api_keys:
            raise LimitExceeded("API key limit of the plan reached", details={"resource": "api_keys", "limit": self.limits.api_keys})
        self._api_key_added(key_id=key_id, actor=actor, request_id=request_id)

    def release_api_key(self, key_id: UUID, actor: str, request_id: str) -> None:
        if self.active_api_keys <= 0:
            raise Conflict("no API key slot is in use", code="API_KEY_NOT_RESERVED")
        self._api_key_released(key_id=key_id, actor=actor, request_id=request_id)

    # -- helpers ----------------------------------------------------------------------------
    def _member_role(self, user_id: UUID) -> Role:
        role = self.role_of(user_id)
        if role is None:
            raise NotFound("member not found", code="MEMBER_NOT_FOUND")
        return role

    @staticmethod
    def _guard_owner_grant(by_role: Role, role: Role) -> None:
        if role == Role.OWNER and by_role != Role.OWNER:
            raise Forbidden("only owners may grant, change or remove the owner role", code="OWNER_ROLE_REQUIRED")

    # -- events -----------------------------------------------------------------------------
    @event("Renamed")
    def _renamed(self, name: str, actor: str, request_id: str) -> None:
        self.name = name

    @event("PlanChanged")
    def _plan_changed(self, plan: str, actor: str, request_id: str) -> None:
        self.plan = plan

    @event("MemberAdded")
    def _member_added(self, user_id: UUID, role: str, actor: str, request_id: str, idempotency: str,
                      request_hash: str) -> None:
        self.members[str(user_id)] = role
        if idempotency:
            self.idempotent_members[idempotency] = (str(user_id), request_hash)

    @event("MemberRoleChanged")
    def _member_role_changed(self, user_id: UUID, old_role: str, new_role: str, actor: str, request_id: str) -> None:
        self.members[str(user_id)] = new_role

    @event("MemberRemoved")
    def _member_removed(self, user_id: UUID, role: str, actor: str, request_id: str) -> None:
        del self.members[str(user_id)]

    @event("PromptAdded")
    def _prompt_added(self, prompt_id: UUID, actor: str, request_id: str) -> None:
        self.prompt_count += 1

    @event("ApiKeyAdded")
    def _api_key_added(self, key_id: UUID, actor: str, request_id: str) -> None:
        self.active_api_keys += 1

    @event("ApiKeyReleased")
    def _api_key_released(self, key_id: UUID, actor: str, request_id: str) -> None:
        self.active_api_keys -= 1
