"""Organisations: the tenant. Members, roles, plan, and the plan's key counter (prompts are counted
on their own stream: domain.quota, adr/0025)."""
from __future__ import annotations

from uuid import UUID

from domain.base import AuditedAggregate
from domain.errors import Conflict, Forbidden, Invalid, LimitExceeded, NotFound
from domain.permissions import PLAN_LIMITS, ROLE_PERMISSIONS, Permission, Plan, Role, parse_plan, parse_role
from domain.values import clean_label, clean_name


DEFAULT_PROTECTED = ["production"]
DEFAULT_APPROVER_ROLES = sorted([Role.OWNER.value, Role.ADMIN.value, Role.REVIEWER.value])
MAX_PROTECTED = 20
MAX_APPROVALS = 5


def _upcast_governance(state: dict) -> None:
    """Organisations created before governance protect `production`, one approval by any reviewer."""
    state.setdefault("protected_labels", list(DEFAULT_PROTECTED))
    state.setdefault("review_policies", {})


class Organisation(AuditedAggregate):
    """Membership and roles are read from here to authorise every command (strongly consistent).

    Snapshots (every 100 events) hold this state: a change to the attributes below needs a
    `class_version` bump and an upcaster, or old snapshots load without the new attribute."""

    #: 2: protected labels and review policies (governance).
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict) -> None:
        _upcast_governance(state)

    class Created(AuditedAggregate.Created):
        name: str
        plan: str
        owner_id: UUID
        request_hash: str
        protected_labels: list[str]
        review_policies: dict

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            _upcast_governance(state)

        def apply(self, org: "Organisation") -> None:
            org.name = self.name
            org.request_hash = self.request_hash
            org.plan = self.plan
            org.members = {str(self.owner_id): Role.OWNER.value}
            org.prompt_count = 0
            org.active_api_keys = 0
            #: Members added under an Idempotency-Key: token -> (user id, request fingerprint).
            org.idempotent_members = {}
            #: Labels nobody moves directly: changes go through review requests (domain.review).
            org.protected_labels = list(self.protected_labels)
            #: Per protected label: {"approvals": n, "approver_roles": [...]} (defaults otherwise).
            org.review_policies = {k: dict(v) for k, v in self.review_policies.items()}

    class Renamed(AuditedAggregate.Event):
        name: str

        def apply(self, org: "Organisation") -> None:
            org.name = self.name

    class PlanChanged(AuditedAggregate.Event):
        plan: str

        def apply(self, org: "Organisation") -> None:
            org.plan = self.plan

    class MemberAdded(AuditedAggregate.Event):
        user_id: UUID
        role: str
        #: Token of the Idempotency-Key the member was added under ("" without one).
        idempotency: str
        request_hash: str

        def apply(self, org: "Organisation") -> None:
            org.members[str(self.user_id)] = self.role
            if self.idempotency:
                org.idempotent_members[self.idempotency] = (str(self.user_id), self.request_hash)

    class MemberRoleChanged(AuditedAggregate.Event):
        user_id: UUID
        old_role: str
        new_role: str

        def apply(self, org: "Organisation") -> None:
            org.members[str(self.user_id)] = self.new_role

    class MemberRemoved(AuditedAggregate.Event):
        user_id: UUID
        role: str

        def apply(self, org: "Organisation") -> None:
            del org.members[str(self.user_id)]

    class ProtectedLabelsChanged(AuditedAggregate.Event):
        protected_labels: list[str]
        review_policies: dict

        def apply(self, org: "Organisation") -> None:
            org.protected_labels = list(self.protected_labels)
            org.review_policies = {k: dict(v) for k, v in self.review_policies.items()}

    class PromptAdded(AuditedAggregate.Event):
        """A prompt counted here: logs written before adr/0025 only (creations now count on the
        organisation's PromptQuota, opened from `prompt_count`)."""
        prompt_id: UUID

        def apply(self, org: "Organisation") -> None:
            org.prompt_count += 1

    class ApiKeyAdded(AuditedAggregate.Event):
        key_id: UUID

        def apply(self, org: "Organisation") -> None:
            org.active_api_keys += 1

    class ApiKeyReleased(AuditedAggregate.Event):
        key_id: UUID

        def apply(self, org: "Organisation") -> None:
            org.active_api_keys -= 1

    @classmethod
    def create(cls, id: UUID, name: str, owner_id: UUID, plan: str = "FREE", request_hash: str = "") -> "Organisation":
        return cls._create(cls.Created, id=id, name=clean_name(name, what="organisation name"),
                           plan=parse_plan(plan).value, owner_id=owner_id, request_hash=request_hash,
                           protected_labels=list(DEFAULT_PROTECTED), review_policies={})

    # -- queries on state -------------------------------------------------------------------
    @property
    def org_id(self) -> UUID:
        return self.id

    @property
    def limits(self):
        return PLAN_LIMITS[Plan(self.plan)]

    def role_of(self, user_id: UUID | None) -> Role | None:
        role = self.members.get(str(user_id)) if user_id is not None else None
        return Role(role) if role else None

    def permissions_of(self, user_id: UUID | None) -> frozenset[Permission]:
        """What the member may do here (nothing for non-members)."""
        role = self.role_of(user_id)
        return ROLE_PERMISSIONS[role] if role else frozenset()

    def owners(self) -> list[str]:
        return [u for u, r in self.members.items() if r == Role.OWNER.value]

    def is_protected(self, label: str) -> bool:
        return label in self.protected_labels

    def require_unprotected(self, label: str) -> None:
        """A protected label is never moved or removed directly, by anyone, through any interface."""
        if self.is_protected(label):
            raise Conflict(f"label {label!r} is protected: request a review", code="LABEL_PROTECTED",
                           details={"label": label, "review_requests": f"/v1/orgs/{self.id}/review-requests"})

    def review_policy(self, label: str) -> dict:
        """How many approvals a change of `label` needs, and which roles may give them."""
        policy = self.review_policies.get(label, {})
        return {"approvals": policy.get("approvals", 1),
                "approver_roles": list(policy.get("approver_roles", DEFAULT_APPROVER_ROLES))}

    # -- commands ---------------------------------------------------------------------------
    def protect_labels(self, labels: list[str], policies: dict | None = None) -> None:
        """Set the protected labels and (optionally) their review policies."""
        cleaned = sorted({clean_label(label) for label in labels})
        if len(cleaned) > MAX_PROTECTED:
            raise Invalid(f"at most {MAX_PROTECTED} protected labels", code="INVALID_LABEL")
        if policies is None:  # keep the policies of the labels that stay protected
            policies = {label: policy for label, policy in self.review_policies.items() if label in cleaned}
        else:
            policies = {clean_label(label): _clean_policy(label, policy) for label, policy in policies.items()}
        unknown = sorted(set(policies) - set(cleaned))
        if unknown:
            raise Invalid("review policies name labels that are not protected", code="INVALID_REVIEW_POLICY",
                          details={"labels": unknown})
        if cleaned != self.protected_labels or policies != self.review_policies:
            self.trigger_event(self.ProtectedLabelsChanged, protected_labels=cleaned, review_policies=policies)

    def rename(self, name: str) -> None:
        name = clean_name(name, what="organisation name")
        if name != self.name:
            self.trigger_event(self.Renamed, name=name)

    def change_plan(self, plan: str, prompts: int) -> None:
        """`prompts`: the organisation's prompt count (its PromptQuota's, saved with this change)."""
        new = parse_plan(plan)
        limits = PLAN_LIMITS[new]
        if len(self.members) > limits.members or prompts > limits.prompts or self.active_api_keys > limits.api_keys:
            raise LimitExceeded(
                "current usage exceeds the target plan's limits",
                code="PLAN_DOWNGRADE_BLOCKED",
                details={"members": len(self.members), "prompts": prompts, "api_keys": self.active_api_keys},
            )
        if new.value != self.plan:
            self.trigger_event(self.PlanChanged, plan=new.value)

    def member_added_for(self, idempotency: str, request_hash: str) -> str | None:
        """The user an earlier add under this idempotency token added, if any (same token, other
        request: conflict)."""
        if idempotency not in self.idempotent_members:
            return None
        user_id, fingerprint = self.idempotent_members[idempotency]
        if fingerprint != request_hash:
            raise Conflict("Idempotency-Key was used with a different request", code="IDEMPOTENCY_KEY_REUSED")
        return user_id

    def add_member(self, user_id: UUID, role: str, by_role: Role, idempotency: str = "", request_hash: str = "") -> None:
        new_role = parse_role(role)
        self._guard_owner_grant(by_role, new_role)
        if str(user_id) in self.members:
            raise Conflict("user is already a member", code="MEMBER_EXISTS", details={"user_id": str(user_id)})
        if len(self.members) >= self.limits.members:
            raise LimitExceeded("member limit of the plan reached", details={"resource": "members", "limit": self.limits.members})
        self.trigger_event(self.MemberAdded, user_id=user_id, role=new_role.value, idempotency=idempotency,
                           request_hash=request_hash)

    def change_role(self, user_id: UUID, role: str, by_role: Role) -> None:
        new_role = parse_role(role)
        current = self._member_role(user_id)
        self._guard_owner_grant(by_role, new_role)
        self._guard_owner_grant(by_role, current)
        if current == new_role:
            return
        if current == Role.OWNER and len(self.owners()) == 1:
            raise Conflict("the last owner cannot be demoted", code="LAST_OWNER")
        self.trigger_event(self.MemberRoleChanged, user_id=user_id, old_role=current.value, new_role=new_role.value)

    def remove_member(self, user_id: UUID, by_role: Role) -> None:
        current = self._member_role(user_id)
        self._guard_owner_grant(by_role, current)
        if current == Role.OWNER and len(self.owners()) == 1:
            raise Conflict("the last owner cannot be removed", code="LAST_OWNER")
        self.trigger_event(self.MemberRemoved, user_id=user_id, role=current.value)

    def reserve_api_key(self, key_id: UUID) -> None:
        if self.active_api_keys >= self.limits.api_keys:
            raise LimitExceeded("API key limit of the plan reached", details={"resource": "api_keys", "limit": self.limits.api_keys})
        self.trigger_event(self.ApiKeyAdded, key_id=key_id)

    def release_api_key(self, key_id: UUID) -> None:
        if self.active_api_keys <= 0:
            raise Conflict("no API key slot is in use", code="API_KEY_NOT_RESERVED")
        self.trigger_event(self.ApiKeyReleased, key_id=key_id)

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


def _clean_policy(label: str, policy: dict) -> dict:
    if not isinstance(policy, dict) or set(policy) - {"approvals", "approver_roles"}:
        raise Invalid(f"the policy of {label!r} is {{approvals, approver_roles}}", code="INVALID_REVIEW_POLICY",
                      details={"label": label})
    approvals = policy.get("approvals", 1)
    if not isinstance(approvals, int) or isinstance(approvals, bool) or not 1 <= approvals <= MAX_APPROVALS:
        raise Invalid(f"approvals must be 1..{MAX_APPROVALS}", code="INVALID_REVIEW_POLICY", details={"label": label})
    roles = policy.get("approver_roles", DEFAULT_APPROVER_ROLES)
    if not isinstance(roles, list) or not roles:
        raise Invalid("approver_roles is a non-empty list of roles", code="INVALID_REVIEW_POLICY",
                      details={"label": label})
    parsed = sorted({parse_role(r).value for r in roles})
    return {"approvals": approvals, "approver_roles": parsed}
