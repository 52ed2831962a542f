"""API key commands: issue (raw key shown once), revoke, authenticate against aggregate state.

Keys are issued by users only (adr/0009): a key cannot mint keys, so no key outlives the person
who is answerable for it. What a key may do is decided by application.policy on every request."""
from __future__ import annotations

from uuid import UUID

from application.base import BaseApp
from application.commands import command
from application.principal import Principal
from application.results import CommandResult
from application.credentials import api_key_principal
from application.security import new_api_key
from domain.api_key import ApiKey
from domain.errors import Forbidden, NotFound
from domain.permissions import Permission, parse_permissions


def key_not_found() -> NotFound:
    return NotFound("API key not found", code="API_KEY_NOT_FOUND")


class ApiKeyCommands(BaseApp):
    @command(serialise="org_id")
    def issue_api_key(
        self, principal: Principal, org_id: UUID, name: str, permissions: list[str], request_id: str,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        """`data["key"]` holds the raw key; it exists nowhere else and is never returned again."""
        wanted = {p.value for p in parse_permissions(permissions)}
        grant = self.grant(principal, org_id, Permission.API_KEYS_MANAGE)
        if principal.api_key_id is not None:
            raise Forbidden("API keys cannot issue API keys; a member of the organisation must",
                            code="USER_TOKEN_REQUIRED")
        excess = sorted(wanted - grant.permission_names)
        if excess:
            raise Forbidden("a key cannot carry permissions its creator lacks", code="PERMISSION_ESCALATION",
                            details={"not_held": excess})
        key_id, fingerprint, replay = self._idempotent(
            principal, f"org:{org_id}:api_keys", idempotency_key, {"name": name, "permissions": sorted(wanted)}
        )
        if replay:
            return replay
        raw, prefix, secret_hash = new_api_key(key_id)
        key = ApiKey.issue(key_id, org_id, name, prefix, secret_hash, sorted(wanted), issued_by=principal.actor,
                           request_hash=fingerprint)
        grant.org.reserve_api_key(key_id)
        return CommandResult(key_id, self._save(key, grant.org), data={"key": raw, "prefix": prefix})

    @command(serialise="org_id")
    def revoke_api_key(self, principal: Principal, org_id: UUID, key_id: UUID, request_id: str) -> CommandResult:
        grant = self.grant(principal, org_id, Permission.API_KEYS_MANAGE)
        key = self._key(org_id, key_id)
        key.revoke()
        grant.org.release_api_key(key_id)
        return CommandResult(key_id, self._save(key, grant.org))

    def get_api_key(self, principal: Principal, org_id: UUID, key_id: UUID) -> ApiKey:
        """A key's metadata from its aggregate (api_keys:manage); the raw key is not recoverable."""
        self.grant(principal, org_id, Permission.API_KEYS_MANAGE)
        return self._key(org_id, key_id)

    def authenticate_api_key(self, raw: str) -> Principal:
        """Checked on every request against the event store, so a revocation applies at once.
        What the key may do in its organisation is the policy's answer (`grant`)."""
        return api_key_principal(raw, self._key_or_none)

    def _key(self, org_id: UUID, key_id: UUID) -> ApiKey:
        key = self._load(key_id, ApiKey, key_not_found)
        if key.org_id != org_id:
            raise key_not_found()
        return key
