"""Organisations, members and API keys."""
from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import ConfigDict, Field, StrictInt, StringConstraints, model_validator

from interfaces.http.schemas.common import Instant, RequestModel, ResponseModel

ROLE = Field(max_length=32, description="owner | admin | developer | reviewer | viewer", examples=["developer"])


class OrgCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Acme"}]})
    name: str = Field(max_length=200)


class ReviewPolicy(RequestModel):
    approvals: StrictInt = Field(1, ge=1, le=5, description="Approvals a change needs (each by another person).")
    approver_roles: list[str] = Field(default_factory=lambda: ["owner", "admin", "reviewer"], max_length=5)


class OrgPatch(RequestModel):
    """All need `org:manage` (owners). Applied atomically, and audited."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"plan": "PRO"}, {"name": "Acme Inc."},
        {"protected_labels": ["production", "eu-production"],
         "review_policies": {"production": {"approvals": 2, "approver_roles": ["owner", "admin"]}}}]})
    name: str | None = Field(None, max_length=200)
    plan: str | None = Field(None, max_length=16, description="FREE | PRO")
    protected_labels: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(None, max_length=20, description=(
        "Labels nobody moves directly: their changes go through review requests (default: production)."))
    review_policies: dict[str, ReviewPolicy] | None = Field(None, description=(
        "Per protected label: approvals required and the roles that may approve (left out: 1 approval by an "
        "owner, admin or reviewer)."))


class PlanLimitsOut(ResponseModel):
    members: int
    prompts: int
    api_keys: int


class OrgOut(ResponseModel):
    id: str
    name: str
    plan: str
    role: str | None = Field(description="The caller's role (null for an API key).")
    permissions: list[str]
    limits: PlanLimitsOut
    usage: PlanLimitsOut
    protected_labels: list[str] = Field(default_factory=list)
    review_policies: dict[str, dict[str, Any]] = Field(default_factory=dict, description=(
        "Every protected label's policy: {approvals, approver_roles}."))


class OrgCreated(ResponseModel):
    id: str
    name: str
    plan: str
    role: str
    position: int


class OrgSummary(ResponseModel):
    id: str
    name: str
    plan: str
    role: str | None


class OrgList(ResponseModel):
    items: list[OrgSummary]


class OrgUpdated(ResponseModel):
    id: str
    position: int


class MemberAdd(RequestModel):
    """Name the user by `email` or by `user_id` (exactly one)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "grace@example.com", "role": "developer"}]})
    email: str | None = Field(None, max_length=320)
    user_id: UUID | None = None
    role: str = ROLE

    @model_validator(mode="after")
    def _one_target(self) -> "MemberAdd":
        if (self.email is None) == (self.user_id is None):
            raise ValueError("give exactly one of email or user_id")
        return self


class MemberPatch(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "reviewer"}]})
    role: str = ROLE


class MemberOut(ResponseModel):
    user_id: str
    email: str
    display_name: str
    role: str
    since: Instant


class MemberList(ResponseModel):
    items: list[MemberOut]


class MemberChanged(ResponseModel):
    user_id: str
    role: str | None
    position: int


class ApiKeyCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "production fetcher", "permissions": ["prompts:read"]}]})
    name: str = Field(max_length=100)
    permissions: list[str] = Field(max_length=16, description="A subset of the creator's permissions.")


class ApiKeyCreated(ResponseModel):
    id: str
    name: str
    prefix: str
    permissions: list[str]
    key: str | None = Field(description=(
        "The raw key, shown exactly once. null on an idempotent replay: the secret is never returned twice."))
    position: int


class ApiKeyOut(ResponseModel):
    id: str
    name: str
    prefix: str
    permissions: list[str]
    created_at: Instant
    created_by: str
    revoked_at: Instant | None
    revoked_by: str | None


class ApiKeyList(ResponseModel):
    items: list[ApiKeyOut]


class ApiKeyRevoked(ResponseModel):
    id: str
    revoked: bool = True
    position: int
