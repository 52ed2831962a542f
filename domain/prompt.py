"""Prompts: immutable numbered versions, labels moved by compare-and-set, archive/restore."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import AuditedAggregate
from domain.errors import Conflict, NotFound
from domain.ids import prompt_name_index_id
from domain.values import (
    AUTOMATIC_LABELS, clean_label, clean_message, clean_model_config, clean_name, clean_tags, clean_template,
)


class Prompt(AuditedAggregate):
    """Version n is the n-th Created/Revised event; versions are never edited, only added."""

    class Created(AuditedAggregate.Created):
        org_id: UUID
        name: str
        template: str
        variables: list[str]
        model_config: dict[str, Any]
        tags: list[str]
        message: str
        request_hash: str

        def apply(self, prompt: "Prompt") -> None:
            prompt.org_id = self.org_id
            prompt.name = self.name
            prompt.versions = []
            prompt.labels = {}
            prompt.archived = False
            prompt.request_hash = self.request_hash
            #: Revisions made under an Idempotency-Key: token -> (version, request fingerprint).
            prompt.idempotent_revisions = {}
            prompt._append_version(self)

    class Revised(AuditedAggregate.Event):
        version: int
        org_id: UUID
        template: str
        variables: list[str]
        model_config: dict[str, Any]
        tags: list[str]
        message: str
        #: Token of the Idempotency-Key the revision was made under ("" without one).
        idempotency: str
        request_hash: str

        def apply(self, prompt: "Prompt") -> None:
            prompt._append_version(self)
            if self.idempotency:
                prompt.idempotent_revisions[self.idempotency] = (self.version, self.request_hash)

    class LabelMoved(AuditedAggregate.Event):
        org_id: UUID
        label: str
        from_version: int | None
        to_version: int

        def apply(self, prompt: "Prompt") -> None:
            prompt.labels[self.label] = self.to_version

    class LabelRemoved(AuditedAggregate.Event):
        org_id: UUID
        label: str
        from_version: int

        def apply(self, prompt: "Prompt") -> None:
            del prompt.labels[self.label]

    class Archived(AuditedAggregate.Event):
        org_id: UUID

        def apply(self, prompt: "Prompt") -> None:
            prompt.archived = True

    class Restored(AuditedAggregate.Event):
        org_id: UUID

        def apply(self, prompt: "Prompt") -> None:
            prompt.archived = False

    @classmethod
    def create(
        cls, id: UUID, org_id: UUID, name: str, template: str, variables: list[str] | None,
        model_config: dict[str, Any] | None, tags: list[str], message: str, request_hash: str = "",
    ) -> "Prompt":
        template, variables = clean_template(template, variables)
        return cls._create(
            cls.Created, id=id, org_id=org_id, name=clean_name(name), template=template, variables=variables,
            model_config=clean_model_config(model_config), tags=clean_tags(tags), message=clean_message(message),
            request_hash=request_hash,
        )

    # -- queries on state -------------------------------------------------------------------
    @property
    def latest_version(self) -> int:
        return len(self.versions)

    def get_version(self, number: int) -> dict[str, Any]:
        if not 1 <= number <= self.latest_version:
            raise NotFound(
                f"version {number} does not exist", code="VERSION_NOT_FOUND",
                details={"version": number, "latest_version": self.latest_version},
            )
        return self.versions[number - 1]

    def resolve(self, label: str | None = None, version: int | None = None) -> dict[str, Any]:
        """The version a fetch names: explicit number, a label, or latest."""
        if version is not None:
            return self.get_version(version)
        label = label.strip().lower() if label is not None else None
        if label is None or label in AUTOMATIC_LABELS:
            return self.versions[-1]
        if label not in self.labels:
            raise NotFound(f"label {label!r} is not set", code="LABEL_NOT_FOUND", details={"label": label})
        return self.get_version(self.labels[label])

    # -- commands ---------------------------------------------------------------------------
    def revise(
        self, base_version: int, template: str | None = None, variables: list[str] | None = None,
        model_config: dict[str, Any] | None = None, tags: list[str] | None = None, message: str = "",
        idempotency: str = "", request_hash: str = "",
    ) -> None:
        """Add version n+1. Fields left out are inherited from the latest version.

        `idempotency` (a token derived from actor and Idempotency-Key) and `request_hash` are kept so
        a retried revision can be recognised (see `revision_for`) instead of failing as stale."""
        self._require_active()
        if base_version != self.latest_version:
            raise Conflict(
                f"version {base_version} is not the latest version",
                code="PROMPT_VERSION_CONFLICT",
                details={"base_version": base_version, "current_version": self.latest_version},
            )
        latest = self.versions[-1]
        if template is None and variables is None:
            variables = latest["variables"]
        template, variables = clean_template(template if template is not None else latest["template"], variables)
        self.trigger_event(
            self.Revised,
            version=self.latest_version + 1, org_id=self.org_id, template=template, variables=variables,
            model_config=clean_model_config(model_config if model_config is not None else latest["model_config"]),
            tags=clean_tags(tags if tags is not None else latest["tags"]), message=clean_message(message),
            idempotency=idempotency, request_hash=request_hash,
        )

    def revision_for(self, idempotency: str, request_hash: str) -> int | None:
        """The version an earlier revision under this idempotency token created, if any.
        The same token with a different request is a conflict."""
        if idempotency not in self.idempotent_revisions:
            return None
        version, fingerprint = self.idempotent_revisions[idempotency]
        if fingerprint != request_hash:
            raise Conflict("Idempotency-Key was used with a different request", code="IDEMPOTENCY_KEY_REUSED")
        return version

    def move_label(self, label: str, version: int, expected_version: int | None) -> bool:
        """Point `label` at `version`. `expected_version` (0 = "label unset") is a compare-and-set.
        Returns False when the label already points there (no event)."""
        self._require_active()
        label = clean_label(label)
        self.get_version(version)
        current = self.labels.get(label)
        if expected_version is not None and (current or 0) != expected_version:
            raise Conflict(
                f"label {label!r} does not point at version {expected_version}",
                code="LABEL_CONFLICT",
                details={"label": label, "expected_version": expected_version, "current_version": current},
            )
        if current == version:
            return False
        self.trigger_event(self.LabelMoved, org_id=self.org_id, label=label, from_version=current,
                           to_version=version)
        return True

    def remove_label(self, label: str, expected_version: int | None) -> None:
        self._require_active()
        label = clean_label(label)
        current = self.labels.get(label)
        if current is None:
            raise NotFound(f"label {label!r} is not set", code="LABEL_NOT_FOUND", details={"label": label})
        if expected_version is not None and current != expected_version:
            raise Conflict(
                f"label {label!r} does not point at version {expected_version}", code="LABEL_CONFLICT",
                details={"label": label, "expected_version": expected_version, "current_version": current},
            )
        self.trigger_event(self.LabelRemoved, org_id=self.org_id, label=label, from_version=current)

    def archive(self) -> None:
        if self.archived:
            raise Conflict("prompt is already archived", code="PROMPT_ARCHIVED")
        self.trigger_event(self.Archived, org_id=self.org_id)

    def restore(self) -> None:
        if not self.archived:
            raise Conflict("prompt is not archived", code="PROMPT_NOT_ARCHIVED")
        self.trigger_event(self.Restored, org_id=self.org_id)

    def _require_active(self) -> None:
        if self.archived:
            raise Conflict("an archived prompt cannot be changed; restore it first", code="PROMPT_ARCHIVED")

    def _append_version(self, e: "Prompt.Created | Prompt.Revised") -> None:
        self.versions.append({
            "version": len(self.versions) + 1, "template": e.template, "variables": list(e.variables),
            "model_config": dict(e.model_config), "tags": list(e.tags), "message": e.message, "author": e.actor,
        })


class PromptNameIndex(Aggregate):
    """Claims a prompt name within an organisation (case-insensitive)."""

    class Created(Aggregate.Created):
        org_id: UUID
        name: str
        prompt_id: UUID

    @staticmethod
    def create_id(org_id: UUID, name: str) -> UUID:
        return prompt_name_index_id(org_id, name)

    @event(Created)
    def __init__(self, org_id: UUID, name: str, prompt_id: UUID):
        self.prompt_id = prompt_id
