"""User accounts and the unique-email index aggregate."""
from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import AuditedAggregate
from domain.ids import email_index_id


def normalise_email(email: str) -> str:
    return email.strip().lower()


class User(AuditedAggregate):
    """A person who can log in. The password hash is argon2id and never leaves the aggregate."""

    class Registered(AuditedAggregate.Created):
        email: str
        password_hash: str
        display_name: str

        def apply(self, user: "User") -> None:
            user.email = self.email
            user.password_hash = self.password_hash
            user.display_name = self.display_name
            user.session_epoch = 0

    class PasswordChanged(AuditedAggregate.Event):
        password_hash: str

        def apply(self, user: "User") -> None:
            user.password_hash = self.password_hash
            user.session_epoch += 1

    class AllSessionsRevoked(AuditedAggregate.Event):
        """Every session opened before this event stops refreshing (logout-all)."""

        def apply(self, user: "User") -> None:
            user.session_epoch += 1


    @classmethod
    def register(cls, id: UUID, email: str, password_hash: str, display_name: str) -> "User":
        return cls._create(cls.Registered, id=id, email=email, password_hash=password_hash, display_name=display_name)

    def change_password(self, password_hash: str) -> None:
        self.trigger_event(self.PasswordChanged, password_hash=password_hash)

    def revoke_all_sessions(self) -> None:
        self.trigger_event(self.AllSessionsRevoked)


class EmailIndex(Aggregate):
    """Claims an email address: its id is derived from the email, so a second claim collides."""

    class Created(Aggregate.Created):
        email: str
        user_id: UUID

    @staticmethod
    def create_id(email: str) -> UUID:
        return email_index_id(email)

    @event(Created)
    def __init__(self, email: str, user_id: UUID):
        self.user_id = user_id
