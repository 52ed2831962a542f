"""API keys: a visible prefix plus a high-entropy secret, stored only as a hash."""
from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import Conflict
from domain.values import clean_name


class ApiKey(Aggregate):
    """Permissions are a subset of the issuer's at issue time; revocation is immediate because
    authentication reads this aggregate, not a read model."""

    @event("Issued")
    def __init__(
        self, id: UUID, org_id: UUID, name: str, prefix: str, secret_hash: str, permissions: list[str],
        actor: str, request_id: str, request_hash: str,
    ):
        self.org_id = org_id
        self.name = name
        self.prefix = prefix
        self.secret_hash = secret_hash
        self.permissions = sorted(permissions)
        self.revoked = False
        self.request_hash = request_hash

    @classmethod
    def issue(cls, id: UUID, org_id: UUID, name: str, prefix: str, secret_hash: str, permissions: list[str],
              actor: str, request_id: str, request_hash: str = "") -> "ApiKey":
        return cls(
            id=id, org_id=org_id, name=clean_name(name, what="key name", max_len=100), prefix=prefix,
            secret_hash=secret_hash, permissions=sorted(set(permissions)), actor=actor, request_id=request_id,
            request_hash=request_hash,
        )

    def revoke(self, actor: str, request_id: str) -> None:
        if self.revoked:
            raise Conflict("API key is already revoked", code="API_KEY_REVOKED")
        self._revoked(org_id=self.org_id, actor=actor, request_id=request_id)

    @event("Revoked")
    def _revoked(self, org_id: UUID, actor: str, request_id: str) -> None:
        self.revoked = True
