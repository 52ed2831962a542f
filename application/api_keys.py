"""API key commands: issue (raw key shown once), revoke, authenticate against aggregate state."""
from __future__ import annotations

from uuid import UUID

from application.base import BaseApp
from application.principal import Principal
from application.results import CommandResult
from application.security import new_api_key, parse_api_key, secret_matches
from domain.api_key import ApiKey
from domain.errors import Forbidden, NotFound, Unauthenticated
from domain.permissions import Permission, parse_permissions

INVALID_KEY = Unauthenticated("invalid API key", code="INVALID_API_KEY")


class ApiKeyCommands(BaseApp):
    def issue_api_key(
        self, principal: Principal, org_id: UUID, name: str, permissions: list[str], request_id: str,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        """`data["key"]` holds the raw key; it exists nowhere else and is never returned again."""
        wanted = {p.value for p in parse_permissions(permissions)}

        def command() -> CommandResult:
            org, _ = self._authorize(principal, org_id, Permission.API_KEYS_MANAGE)
            excess = sorted(wanted - self.permissions_of(principal, org_id))
            if excess:
                raise Forbidden("a key cannot carry permissions its creator lacks", code="PERMISSION_ESCALATION",
                                details={"not_held": excess})
            key_id, fingerprint, replay = self._idempotent(
                principal, f"org:{org_id}:api_keys", idempotency_key, {"name": name, "permissions": sorted(wanted)}
            )
            if replay:
                return replay
            raw, prefix, secret_hash = new_api_key(key_id)
            key = ApiKey.issue(key_id, org_id, name, prefix, secret_hash, sorted(wanted), principal.actor,
                               request_id, request_hash=fingerprint)
            org.reserve_api_key(key_id, principal.actor, request_id)
            return CommandResult(key_id, self._save(key, org), data={"key": raw, "prefix": prefix})

        return self._retrying(command)

    def revoke_api_key(self, principal: Principal, org_id: UUID, key_id: UUID, request_id: str) -> CommandResult:
        def command() -> CommandResult:
            org, _ = self._authorize(principal, org_id, Permission.API_KEYS_MANAGE)
            key = self._key(org_id, key_id)
            key.revoke(principal.actor, request_id)
            org.release_api_key(key_id, principal.actor, request_id)
            return CommandResult(key_id, self._save(key, org))

        return self._retrying(command)

    def get_api_key(self, principal: Principal, org_id: UUID, key_id: UUID) -> ApiKey:
        """A key's metadata from its aggregate (api_keys:manage); the raw key is not recoverable."""
        self._authorize(principal, org_id, Permission.API_KEYS_MANAGE)
        return self._key(org_id, key_id)

    def authenticate_api_key(self, raw: str) -> Principal:
        """Checked on every request against the event store, so a revocation applies at once."""
        parsed = parse_api_key(raw)
        if parsed is None:
            raise INVALID_KEY
        key_id, secret = parsed
        try:
            key = self._load(key_id, ApiKey, NotFound("no key"))
        except NotFound:
            raise INVALID_KEY from None
        if not secret_matches(secret, key.secret_hash):
            raise INVALID_KEY
        if key.revoked:
            raise Unauthenticated("API key has been revoked", code="API_KEY_REVOKED")
        return Principal.api_key(key.id, key.org_id, frozenset(key.permissions))

    def _key(self, org_id: UUID, key_id: UUID) -> ApiKey:
        key = self._load(key_id, ApiKey, NotFound("API key not found", code="API_KEY_NOT_FOUND"))
        if key.org_id != org_id:
            raise NotFound("API key not found", code="API_KEY_NOT_FOUND")
        return key
