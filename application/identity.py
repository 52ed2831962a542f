"""Identity commands: register, log in, refresh (rotation + reuse detection), log out, password."""
from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.base import BaseApp
from application.commands import command
from application.credentials import verify_session
from application.security import check_password_policy, hash_password, verify_password
from domain.base import acting
from domain.errors import Conflict, NotFound, Unauthenticated
from domain.ids import email_index_id
from domain.session import Session
from domain.user import EmailIndex, User, normalise_email
from domain.values import clean_name


@dataclass(frozen=True)
class SessionGrant:
    user_id: UUID
    session_id: UUID
    generation: int
    position: int | None


def invalid_refresh_token() -> Unauthenticated:
    return Unauthenticated("invalid refresh token", code="INVALID_TOKEN")


class IdentityCommands(BaseApp):
    @command
    def register_user(self, email: str, password: str, display_name: str, request_id: str) -> tuple[UUID, int | None]:
        email = normalise_email(email)
        check_password_policy(password)
        name = clean_name(display_name or email.split("@")[0], what="display name", max_len=100)
        if self._exists(email_index_id(email)):
            raise Conflict("email is already registered", code="EMAIL_TAKEN")
        user_id = uuid4()
        with acting(f"user:{user_id}", request_id):
            user = User.register(user_id, email, hash_password(password), name)
        index = EmailIndex(email=email, user_id=user_id)
        try:
            position = self._save(user, index)
        except IntegrityError:  # the index aggregate's id collides on a concurrent duplicate
            raise Conflict("email is already registered", code="EMAIL_TAKEN") from None
        return user_id, position

    def find_user_id(self, email: str) -> UUID | None:
        try:
            index = self.repository.get(email_index_id(normalise_email(email)))
        except AggregateNotFoundError:
            return None
        return index.user_id

    def get_user(self, user_id: UUID) -> User:
        return self._load(user_id, User, lambda: NotFound("user not found", code="USER_NOT_FOUND"))

    @command
    def login(self, email: str, password: str, user_agent: str, request_id: str) -> SessionGrant:
        user_id = self.find_user_id(email)
        user = self.get_user(user_id) if user_id else None
        if not verify_password(user.password_hash if user else None, password) or user is None:
            raise Unauthenticated("invalid email or password", code="INVALID_CREDENTIALS")
        with acting(f"user:{user.id}", request_id):
            session = Session.open(uuid4(), user.id, user.session_epoch, user_agent[:200])
        return SessionGrant(user.id, session.id, 0, self._save(session))

    def _session(self, session_id: UUID) -> Session:
        return self._load(session_id, Session, lambda: Unauthenticated("unknown session", code="SESSION_REVOKED"))

    def check_session(self, session_id: UUID, user_id: UUID) -> None:
        """Raise unless the session is active (not revoked, not cut by logout-all or password change)."""
        verify_session(self._session(session_id), user_id, self.get_user)

    @command
    def refresh_session(self, session_id: UUID, generation: int, user_id: UUID, request_id: str) -> SessionGrant:
        """Rotate the session's refresh token. `user_id` is the token's subject: it is checked
        against the session before anything is decided or saved."""
        session = self._session(session_id)
        if session.user_id != user_id:
            raise invalid_refresh_token()
        user = self.get_user(session.user_id)
        with acting(f"user:{user.id}", request_id):
            ok = session.refresh(generation, user.session_epoch)
        position = self._save(session)
        if not ok:
            raise Unauthenticated("refresh token reuse detected; session revoked", code="REFRESH_TOKEN_REUSED")
        return SessionGrant(user.id, session.id, session.generation, position)

    @command
    def logout(self, session_id: UUID, user_id: UUID, request_id: str) -> int | None:
        session = self._session(session_id)
        if session.user_id != user_id:
            raise NotFound("session not found", code="SESSION_NOT_FOUND")
        with acting(f"user:{user_id}", request_id):
            session.revoke("logout")
        return self._save(session)

    @command
    def logout_all(self, user_id: UUID, request_id: str) -> int | None:
        user = self.get_user(user_id)
        with acting(f"user:{user_id}", request_id):
            user.revoke_all_sessions()
        return self._save(user)

    @command
    def change_password(self, user_id: UUID, old_password: str, new_password: str, request_id: str) -> int | None:
        """Every session of the user ends (a new session epoch); the caller logs in again."""
        user = self.get_user(user_id)
        if not verify_password(user.password_hash, old_password):
            raise Unauthenticated("current password is wrong", code="INVALID_CREDENTIALS")
        check_password_policy(new_password)
        with acting(f"user:{user_id}", request_id):
            user.change_password(hash_password(new_password))
        return self._save(user)
