"""Login sessions: one per refresh-token family, with rotation and reuse detection."""
from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import Unauthenticated


class Session(Aggregate):
    """A refresh token names (session id, generation). Only the current generation refreshes;
    presenting an older one means the token was stolen or replayed, so the whole family is revoked."""

    @event("Opened")
    def __init__(self, id: UUID, user_id: UUID, epoch: int, user_agent: str, actor: str, request_id: str):
        self.user_id = user_id
        self.epoch = epoch
        self.user_agent = user_agent
        self.generation = 0
        self.revoked = False
        self.revoked_reason = ""

    def is_active(self, user_epoch: int) -> bool:
        return not self.revoked and self.epoch == user_epoch

    def refresh(self, generation: int, user_epoch: int, actor: str, request_id: str) -> bool:
        """Rotate to generation n+1. Returns False (after revoking) when an old generation is reused."""
        if not self.is_active(user_epoch):
            raise Unauthenticated("session is no longer active", code="SESSION_REVOKED")
        if generation < self.generation:
            self._revoked(reason="refresh_token_reuse", actor=actor, request_id=request_id)
            return False
        if generation != self.generation:
            raise Unauthenticated("unknown refresh token", code="INVALID_REFRESH_TOKEN")
        self._refreshed(generation=self.generation + 1, actor=actor, request_id=request_id)
        return True

    def revoke(self, reason: str, actor: str, request_id: str) -> None:
        if not self.revoked:
            self._revoked(reason=reason, actor=actor, request_id=request_id)

    @event("Refreshed")
    def _refreshed(self, generation: int, actor: str, request_id: str) -> None:
        self.generation = generation

    @event("Revoked")
    def _revoked(self, reason: str, actor: str, request_id: str) -> None:
        self.revoked = True
        self.revoked_reason = reason
