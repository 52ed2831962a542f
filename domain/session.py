"""Login sessions: one per refresh-token family, with rotation and reuse detection."""
from __future__ import annotations

from uuid import UUID

from domain.base import AuditedAggregate
from domain.errors import Unauthenticated


class Session(AuditedAggregate):
    """A refresh token names (session id, generation). Only the current generation refreshes;
    presenting an older one means the token was stolen or replayed, so the whole family is revoked."""

    class Opened(AuditedAggregate.Created):
        user_id: UUID
        epoch: int
        user_agent: str

        def apply(self, session: "Session") -> None:
            session.user_id = self.user_id
            session.epoch = self.epoch
            session.user_agent = self.user_agent
            session.generation = 0
            session.revoked = False
            session.revoked_reason = ""

    class Refreshed(AuditedAggregate.Event):
        generation: int

        def apply(self, session: "Session") -> None:
            session.generation = self.generation

    class Revoked(AuditedAggregate.Event):
        reason: str

        def apply(self, session: "Session") -> None:
            session.revoked = True
            session.revoked_reason = self.reason


    @classmethod
    def open(cls, id: UUID, user_id: UUID, epoch: int, user_agent: str) -> "Session":
        return cls._create(cls.Opened, id=id, user_id=user_id, epoch=epoch, user_agent=user_agent)

    def is_active(self, user_epoch: int) -> bool:
        return not self.revoked and self.epoch == user_epoch

    def refresh(self, generation: int, user_epoch: int) -> bool:
        """Rotate to generation n+1. Returns False (after revoking) when an old generation is reused."""
        if not self.is_active(user_epoch):
            raise Unauthenticated("session is no longer active", code="SESSION_REVOKED")
        if generation < self.generation:
            self.trigger_event(self.Revoked, reason="refresh_token_reuse")
            return False
        if generation != self.generation:
            raise Unauthenticated("unknown refresh token", code="INVALID_TOKEN")
        self.trigger_event(self.Refreshed, generation=self.generation + 1)
        return True

    def revoke(self, reason: str) -> None:
        if not self.revoked:
            self.trigger_event(self.Revoked, reason=reason)
