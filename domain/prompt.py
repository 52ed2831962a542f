"""Prompts: immutable numbered versions, labels moved by compare-and-set, archive/restore."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import Conflict, NotFound
from domain.ids import prompt_name_index_id
from domain.values import clean_label, clean_message, clean_model_config, clean_name, clean_tags, clean_template


class Prompt(Aggregate):
    """Version n is the n-th Created/Revised event; versions are never edited, only added."""

    @event("Created")
    def __init__(
        self, id: UUID, org_id: UUID, name: str, template: str, variables: list[str],
        model_config: dict[str, Any], tags: list[str], message: str, actor: str, request_id: str,
        request_hash: str,
    ):
        self.org_id = org_id
        self.name = name
        self.versions: list[dict[str, Any]] = []
        self.labels: dict[str, int] = {}
        self.archived = False
        self.request_hash = request_hash
        #: Revisions made under an Idempotency-Key: token -> (version, request fingerprint).
        self.idempotent_revisions: dict[str, tuple[int, str]] = {}
        self._append_version(template, variables, model_config, tags, message, actor)

    @classmethod
    def create(
        cls, id: UUID, org_id: UUID, name: str, template: str, variables: list[str] | None,
        model_config: dict[str, Any] | None, tags: list[str], message: str, actor: str, request_id: str,
        request_hash: str = "",
    ) -> "Prompt":
        template, variables = clean_template(template, variables)
        return cls(
            id=id, org_id=org_id, name=clean_name(name), template=template, variables=variables,
            model_config=clean_model_config(model_config), tags=clean_tags(tags), message=clean_message(message),
            actor=actor, request_id=request_id, request_hash=request_hash,
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
        if label is None or label == "latest":
            return self.versions[-1]
        if label not in self.labels:
            raise NotFound(f"label {label!r} is not set", code="LABEL_NOT_FOUND", details={"label": label})
        return self.get_version(self.labels[label])

    # -- commands ---------------------------------------------------------------------------
    def revise(
        self, base_version: int, actor: str, request_id: str, template: str | None = None,
        variables: list[str] | None = None, model_config: dict[str, Any] | None = None,
        tags: list[str] | None = None, message: str = "", idempotency: str = "", request_hash: str = "",
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
        self._revised(
            version=self.latest_version + 1, org_id=self.org_id, template=template, variables=variables,
            model_config=clean_model_config(model_config if model_config is not None else latest["model_config"]),
            tags=clean_tags(tags if tags is not None else latest["tags"]), message=clean_message(message),
            actor=actor, request_id=request_id, idempotency=idempotency, request_hash=request_hash,
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

    def move_label(self, label: str, version: int, expected_version: int | None, actor: str, request_id: str) -> bool:
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
        self._label_moved(
            org_id=self.org_id, label=label, from_version=current, to_version=version, actor=actor, request_id=request_id
        )
        return True

    def remove_label(self, label: str, expected_version: int | None, actor: str, request_id: str) -> None:
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
        self._label_removed(org_id=self.org_id, label=label, from_version=current, actor=actor, request_id=request_id)

    def archive(self, actor: str, request_id: str) -> None:
        if self.archived:
            raise Conflict("prompt is already archived", code="PROMPT_ARCHIVED")
        self._archived(org_id=self.org_id, actor=actor, request_id=request_id)

    def restore(self, actor: str, request_id: str) -> None:
        if not self.archived:
            raise Conflict("prompt is not archived", code="PROMPT_NOT_ARCHIVED")
        self._restored(org_id=self.org_id, actor=actor, request_id=request_id)

    def _require_active(self) -> None:
        if self.archived:
            raise Conflict("an archived prompt cannot be changed; restore it first", code="PROMPT_ARCHIVED")

    def _append_version(self, template, variables, model_config, tags, message, actor) -> None:
        self.versions.append({
            "version": len(self.versions) + 1, "template": template, "variables": list(variables),
            "model_config": dict(model_config), "tags": list(tags), "message": message, "author": actor,
        })

    # -- events -----------------------------------------------------------------------------
    @event("Revised")
    def _revised(
        self, version: int, org_id: UUID, template: str, variables: list[str], model_config: dict[str, Any],
        tags: list[str], message: str, actor: str, request_id: str, idempotency: str, request_hash: str,
    ) -> None:
        self._append_version(template, variables, model_config, tags, message, actor)
        if idempotency:
            self.idempotent_revisions[idempotency] = (version, request_hash)

    @event("LabelMoved")
    def _label_moved(
        self, org_id: UUID, label: str, from_version: int | None, to_version: int, actor: str, request_id: str
    ) -> None:
        self.labels[label] = to_version

    @event("LabelRemoved")
    def _label_removed(self, org_id: UUID, label: str, from_version: int, actor: str, request_id: str) -> None:
        del self.labels[label]

    @event("Archived")
    def _archived(self, org_id: UUID, actor: str, request_id: str) -> None:
        self.archived = True

    @event("Restored")
    def _restored(self, org_id: UUID, actor: str, request_id: str) -> None:
        self.archived = False


class PromptNameIndex(Aggregate):
    """Claims a prompt name within an organisation (case-insensitive)."""

    @staticmethod
    def create_id(org_id: UUID, name: str) -> UUID:
        return prompt_name_index_id(org_id, name)

    @event("Created")
    def __init__(self, org_id: UUID, name: str, prompt_id: UUID):
        self.prompt_id = prompt_id
