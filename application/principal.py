"""Who is acting: a logged-in user or an API key. Built by interfaces from verified credentials."""
from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID


@dataclass(frozen=True)
class Principal:
    user_id: UUID | None = None
    api_key_id: UUID | None = None
    key_org_id: UUID | None = None
    #: The key's own permissions; what it may do is these ∩ its issuer's (application.policy).
    key_permissions: frozenset[str] = field(default_factory=frozenset)
    #: The actor that issued the key (`user:<id>`, or `api_key:<id>` for legacy keys minted by keys).
    key_issued_by: str = ""

    @classmethod
    def user(cls, user_id: UUID) -> "Principal":
        return cls(user_id=user_id)

    @classmethod
    def api_key(cls, key_id: UUID, org_id: UUID, permissions: frozenset[str] | list[str], issued_by: str) -> "Principal":
        return cls(api_key_id=key_id, key_org_id=org_id, key_permissions=frozenset(permissions),
                   key_issued_by=issued_by)

    @property
    def actor(self) -> str:
        """The actor string stored in every event this principal causes."""
        return f"user:{self.user_id}" if self.user_id else f"api_key:{self.api_key_id}"
