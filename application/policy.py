"""The one authorisation policy: what may this principal do in this organisation, now.

Answered from aggregate state (strongly consistent), for users and API keys alike:
- a user may do what their current role in the organisation grants; a non-member gets nothing,
  and the organisation is reported absent (404, never 403: no existence leak);
- an API key acts only in its own organisation, with its own permissions intersected with what
  its issuer may do there *now*: demoting the issuer narrows the key on the next request, removing
  the issuer disables it (401 `API_KEY_DISABLED`). Keys minted by another key (only possible before
  adr/0009) are bounded by that key in turn and die with it (401 `API_KEY_REVOKED`).
Commands and queries both ask this policy; the interfaces never decide permissions themselves.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from application.principal import Principal
from domain.api_key import ApiKey
from domain.errors import Forbidden, NotFound, Unauthenticated
from domain.organisation import Organisation
from domain.permissions import Permission, Role

#: Keys minted by keys (legacy) are followed this far up; a longer chain is treated as disabled.
MAX_ISSUER_CHAIN = 8


def org_not_found() -> NotFound:
    return NotFound("organisation not found", code="ORG_NOT_FOUND")


@dataclass(frozen=True)
class Grant:
    """A principal's standing in one organisation, decided from the organisation loaded with it."""

    org: Organisation
    permissions: frozenset[Permission]
    #: The member's role; None for API keys.
    role: Role | None
    is_api_key: bool
    #: The person answerable for what the principal does (`user:<id>`: the user, or for an API key
    #: the member who issued it) and their role: four-eyes rules are about people, not credentials.
    answerable: str = ""
    answerable_role: Role | None = None

    @property
    def acting_role(self) -> Role:
        """The role a command acts with when it matters (granting roles): API keys act as admin
        at most, never as owner."""
        return self.role if self.role is not None else Role.ADMIN

    def allows(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> "Grant":
        if permission not in self.permissions:
            if self.is_api_key:
                raise Forbidden(f"API key lacks permission {permission.value!r}", code="PERMISSION_DENIED",
                                details={"required": permission.value})
            role = self.role.value if self.role else None
            raise Forbidden(f"role {role!r} lacks permission {permission.value!r}", code="PERMISSION_DENIED",
                            details={"required": permission.value, "role": role})
        return self

    @property
    def permission_names(self) -> frozenset[str]:
        return frozenset(p.value for p in self.permissions)


class AccessPolicy:
    def __init__(self, load_org: Callable[[UUID], Organisation], load_key: Callable[[UUID], ApiKey | None]):
        self._load_org = load_org
        self._load_key = load_key

    def grant(self, principal: Principal, org_id: UUID) -> Grant:
        if principal.api_key_id is not None:
            if principal.key_org_id != org_id:
                raise org_not_found()
            org = self._load_org(org_id)
            issuer, person = self._issuer(org, principal.key_issued_by, depth=0)
            own = frozenset(Permission(p) for p in principal.key_permissions)
            return Grant(org, own & issuer, None, True, person, org.role_of(_uuid(person.partition(":")[2])))
        org = self._load_org(org_id)
        role = org.role_of(principal.user_id)
        if role is None:
            raise org_not_found()
        return Grant(org, org.permissions_of(principal.user_id), role, False, principal.actor, role)

    def _issuer(self, org: Organisation, issued_by: str, depth: int) -> tuple[frozenset[Permission], str]:
        """What the issuer of a key may do now, and the member at the root of the issuing chain."""
        kind, _, ident = issued_by.partition(":")
        if kind == "user":
            permissions = org.permissions_of(_uuid(ident))
            if not permissions:
                raise Unauthenticated("the API key's issuer is no longer a member of the organisation",
                                      code="API_KEY_DISABLED")
            return permissions, issued_by
        if kind == "api_key" and depth < MAX_ISSUER_CHAIN:
            parent = self._load_key(_uuid(ident)) if _uuid(ident) else None
            if parent is None or parent.revoked or parent.org_id != org.id:
                raise Unauthenticated("the API key that issued this key has been revoked", code="API_KEY_REVOKED")
            own = frozenset(Permission(p) for p in parent.permissions)
            permissions, person = self._issuer(org, parent.issued_by, depth + 1)
            return own & permissions, person
        raise Unauthenticated("the API key's issuer cannot be established", code="API_KEY_DISABLED")


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None
