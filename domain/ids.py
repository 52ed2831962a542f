"""Deterministic identifiers for index aggregates and idempotent creation."""
from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6f1c7d1e-2b8a-4f5e-9c3d-5a7b9e0f1c2d")


def email_index_id(email: str) -> UUID:
    return uuid5(NAMESPACE, f"email:{email}")


def prompt_name_index_id(org_id: UUID, name: str) -> UUID:
    return uuid5(NAMESPACE, f"prompt-name:{org_id}:{name.casefold()}")


def idempotent_id(actor: str, scope: str, key: str) -> UUID:
    """The id of the aggregate a creating command makes, derived from who asked and their key.

    Replaying the same (actor, scope, key) addresses the same aggregate, so the event store's
    uniqueness makes a retried create collapse onto the original.
    """
    return uuid5(NAMESPACE, f"idempotency:{actor}:{scope}:{key}")
