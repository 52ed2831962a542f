"""API keys: a visible prefix plus a high-entropy secret, stored only as a hash."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.base import AuditedAggregate
from domain.errors import Conflict
from domain.values import clean_name


class ApiKey(AuditedAggregate):
    """A key acts in one organisation with at most its own permissions, and never more than its
    issuer may do there *now* (application.policy): the issuer is recorded for that reason."""

    class Issued(AuditedAggregate.Created):
        org_id: UUID
        name: str
        prefix: str
        secret_hash: str
        permissions: list[str]
        request_hash: str
        #: The actor (`user:<id>`, or `api_key:<id>` for keys minted by keys before that was refused).
        issued_by: str

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 did not name the issuer separately: it is the actor that issued the key."""
            state["issued_by"] = state["actor"]

        def apply(self, key: "ApiKey") -> None:
            key.org_id = self.org_id
            key.name = self.name
            key.prefix = self.prefix
            key.secret_hash = self.secret_hash
            key.permissions = sorted(self.permissions)
            key.issued_by = self.issued_by
            key.revoked = False
            key.request_hash = self.request_hash

    class Revoked(AuditedAggregate.Event):
        org_id: UUID

        def apply(self, key: "ApiKey") -> None:
            key.revoked = True


    @classmethod
    def issue(cls, id: UUID, org_id: UUID, name: str, prefix: str, secret_hash: str, permissions: list[str],
              issued_by: str, request_hash: str = "") -> "ApiKey":
        return cls._create(
            cls.Issued, id=id, org_id=org_id, name=clean_name(name, what="key name", max_len=100), prefix=prefix,
            secret_hash=secret_hash, permissions=sorted(set(permissions)), issued_by=issued_by,
            request_hash=request_hash,
        )

    def revoke(self) -> None:
        if self.revoked:
            raise Conflict("API key is already revoked", code="API_KEY_REVOKED")
        self.trigger_event(self.Revoked, org_id=self.org_id)
