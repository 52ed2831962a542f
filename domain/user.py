"""User accounts and the unique-email index aggregate."""
from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.ids import email_index_id


def normalise_email(email: str) -> str:
    return email.strip().lower()


class User(Aggregate):
    """A person who can log in. The password hash is argon2id and never leaves the aggregate."""

    @event("Registered")
    def __init__(self, id: UUID, email: str, password_hash: str, display_name: str, actor: str, request_id: str):
        self.email = email
        self.password_hash = password_hash
        self.display_name = display_name
        self.session_epoch = 0

    @event("PasswordChanged")
    def change_password(self, password_hash: str, actor: str, request_id: str) -> None:
        self.password_hash = password_hash
        self.session_epoch += 1

    @event("AllSessionsRevoked")
    def revoke_all_sessions(self, actor: str, request_id: str) -> None:
        """Every session opened before this event stops refreshing (logout-all)."""
        self.session_epoch += 1


class EmailIndex(Aggregate):
    """Claims an email address: its id is derived from the email, so a second claim collides."""

    @staticmethod
    def create_id(email: str) -> UUID:
        return email_index_id(email)

    @event("Created")
    def __init__(self, email: str, user_id: UUID):
        self.user_id = user_id
