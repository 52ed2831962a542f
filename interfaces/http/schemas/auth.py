"""Identity: register, login, refresh, sessions, me."""
from __future__ import annotations


from pydantic import ConfigDict, EmailStr, Field

from interfaces.http.schemas.common import Instant, RequestModel, ResponseModel

PASSWORD = Field(max_length=1024, description="At least 12 characters; stored only as an argon2id hash.",
                 examples=["correct horse battery staple"])


class RegisterRequest(RequestModel):
    """No role can be chosen here: roles exist only inside organisations."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "ada@example.com", "password": "correct horse battery staple", "display_name": "Ada"}]})
    email: EmailStr = Field(max_length=254)
    password: str = PASSWORD
    display_name: str | None = Field(None, max_length=100)


class UserOut(ResponseModel):
    id: str
    email: str
    display_name: str


class RegisterResponse(UserOut):
    position: int


class LoginRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "ada@example.com", "password": "correct horse battery staple"}]})
    email: str = Field(max_length=320)
    password: str = PASSWORD


class PasswordChange(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"current_password": "correct horse battery staple", "new_password": "another long passphrase"}]})
    current_password: str = PASSWORD
    new_password: str = PASSWORD


class RefreshRequest(RequestModel):
    refresh_token: str = Field(max_length=4096)


class TokenPair(ResponseModel):
    access_token: str = Field(description="Short-lived JWT for `Authorization: Bearer ...`.")
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Opaque; single use. Presenting a used one revokes the session.")
    refresh_expires_in: int
    session_id: str
    user_id: str
    position: int


class LogoutResponse(ResponseModel):
    revoked: bool = True
    position: int


class SessionOut(ResponseModel):
    session_id: str
    opened_at: Instant
    user_agent: str
    generation: int = Field(description="How many times this session's refresh token was rotated.")
    last_refreshed_at: Instant | None
    revoked_at: Instant | None
    revoked_reason: str | None
    active: bool
    current: bool = Field(description="This is the session of the token making the request.")


class SessionList(ResponseModel):
    items: list[SessionOut]


class MembershipOut(ResponseModel):
    org_id: str
    name: str
    plan: str
    role: str


class MeOut(UserOut):
    organisations: list[MembershipOut]
