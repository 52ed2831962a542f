"""Prompt commands (create, revise, labels, archive) and strongly consistent prompt reads."""
from __future__ import annotations

from datetime import datetime
from itertools import takewhile
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, project_aggregate

from application.base import BaseApp, request_fingerprint
from application.commands import command
from application.principal import Principal
from application.results import CommandResult
from domain.errors import Conflict, Forbidden, NotFound
from domain.ids import idempotent_id, prompt_name_index_id
from domain.permissions import Permission, label_permission
from domain.prompt import Prompt, PromptNameIndex
from domain.values import clean_name, render


def prompt_not_found(message: str = "prompt not found") -> NotFound:
    return NotFound(message, code="PROMPT_NOT_FOUND")


class PromptCommands(BaseApp):
    @command
    def create_prompt(
        self, principal: Principal, org_id: UUID, *, name: str, template: str, variables: list[str] | None = None,
        model_config: dict[str, Any] | None = None, tags: list[str] | None = None, message: str = "",
        request_id: str, idempotency_key: str | None = None,
    ) -> CommandResult:
        org = self.grant(principal, org_id, Permission.PROMPTS_WRITE).org
        payload = {"org": str(org_id), "name": name, "template": template, "variables": variables,
                   "model_config": model_config, "tags": tags, "message": message}
        prompt_id, fingerprint, replay = self._idempotent(principal, f"org:{org_id}:prompts", idempotency_key, payload)
        if replay:
            return replay
        prompt = Prompt.create(prompt_id, org_id, name, template, variables, model_config, tags or [], message,
                               request_hash=fingerprint)
        if self._exists(prompt_name_index_id(org_id, prompt.name)):
            raise Conflict(f"a prompt named {prompt.name!r} already exists", code="PROMPT_NAME_TAKEN",
                           details={"name": prompt.name})
        org.reserve_prompt(prompt_id)
        index = PromptNameIndex(org_id=org_id, name=prompt.name, prompt_id=prompt_id)
        return CommandResult(prompt_id, self._save(prompt, index, org), version=1)

    @command
    def revise_prompt(
        self, principal: Principal, org_id: UUID, prompt_id: UUID, *, base_version: int, request_id: str,
        template: str | None = None, variables: list[str] | None = None, model_config: dict[str, Any] | None = None,
        tags: list[str] | None = None, message: str = "", idempotency_key: str | None = None,
    ) -> CommandResult:
        fingerprint = request_fingerprint({"base_version": base_version, "template": template, "variables": variables,
                                           "model_config": model_config, "tags": tags, "message": message})
        token = idempotent_id(principal.actor, f"prompt:{prompt_id}:revisions", idempotency_key).hex if idempotency_key else ""
        self.grant(principal, org_id, Permission.PROMPTS_WRITE)
        prompt = self._prompt(org_id, prompt_id)
        if token and (done := prompt.revision_for(token, fingerprint)) is not None:
            return CommandResult(prompt_id, self.head_position(), version=done, replayed=True)
        prompt.revise(base_version, template=template, variables=variables, model_config=model_config, tags=tags,
                      message=message, idempotency=token, request_hash=fingerprint)
        return CommandResult(prompt_id, self._save(prompt), version=prompt.latest_version)

    @command
    def move_label(
        self, principal: Principal, org_id: UUID, prompt_id: UUID, label: str, version: int, request_id: str,
        expected_version: int | None = None,
    ) -> CommandResult:
        self._grant_label(principal, org_id, label)
        prompt = self._prompt(org_id, prompt_id)
        changed = prompt.move_label(label, version, expected_version)
        return CommandResult(prompt_id, self._save(prompt) if changed else None, version=version)

    @command
    def remove_label(
        self, principal: Principal, org_id: UUID, prompt_id: UUID, label: str, request_id: str,
        expected_version: int | None = None,
    ) -> CommandResult:
        self._grant_label(principal, org_id, label)
        prompt = self._prompt(org_id, prompt_id)
        prompt.remove_label(label, expected_version)
        return CommandResult(prompt_id, self._save(prompt))

    @command
    def archive_prompt(self, principal: Principal, org_id: UUID, prompt_id: UUID, request_id: str) -> CommandResult:
        self.grant(principal, org_id, Permission.PROMPTS_WRITE)
        prompt = self._prompt(org_id, prompt_id)
        prompt.archive()
        return CommandResult(prompt_id, self._save(prompt))

    @command
    def restore_prompt(self, principal: Principal, org_id: UUID, prompt_id: UUID, request_id: str) -> CommandResult:
        self.grant(principal, org_id, Permission.PROMPTS_WRITE)
        prompt = self._prompt(org_id, prompt_id)
        prompt.restore()
        return CommandResult(prompt_id, self._save(prompt))

    # -- strongly consistent reads ----------------------------------------------------------
    def read_prompt(self, principal: Principal, org_id: UUID, prompt_id: UUID, as_of: datetime | None = None) -> Prompt:
        """The prompt now, or as it was at `as_of`: folded from the prefix of its stream up to the
        first event recorded after `as_of` (inclusive of an event stamped exactly `as_of`).

        The prefix, not a filter on timestamps: if a clock stepped back, a later event may carry an
        earlier timestamp, and skipping an event in the middle would fold a broken history."""
        self.grant(principal, org_id, Permission.PROMPTS_READ)
        if as_of is None:
            return self._prompt(org_id, prompt_id)
        events = list(takewhile(lambda e: e.timestamp <= as_of, self.events.get(prompt_id)))
        prompt = project_aggregate(None, events) if events else None
        if not isinstance(prompt, Prompt) or prompt.org_id != org_id:
            raise prompt_not_found("prompt did not exist at that time")
        return prompt

    def prompt_id_by_name(self, principal: Principal, org_id: UUID, name: str) -> UUID:
        self.grant(principal, org_id, Permission.PROMPTS_READ)
        try:
            index = self.repository.get(prompt_name_index_id(org_id, clean_name(name)))
        except AggregateNotFoundError:
            raise prompt_not_found() from None
        return index.prompt_id

    def render_prompt(
        self, principal: Principal, org_id: UUID, prompt_id: UUID, values: dict[str, Any],
        label: str | None = None, version: int | None = None,
    ) -> tuple[int, str]:
        prompt = self.read_prompt(principal, org_id, prompt_id)
        chosen = prompt.resolve(label=label, version=version)
        return chosen["version"], render(chosen["template"], chosen["variables"], values)

    def prompt_content(self, prompt_id: str | UUID) -> tuple[str, str, list[str]] | None:
        """Name, template and tags of a prompt's latest version, from its stream: what the vector
        projection embeds when a point has to be rebuilt. Not a tenant-facing read."""
        try:
            prompt = self._load(UUID(str(prompt_id)), Prompt, prompt_not_found)
        except (NotFound, ValueError):
            return None
        latest = prompt.versions[-1]
        return prompt.name, latest["template"], list(latest["tags"])

    # -- helpers ----------------------------------------------------------------------------
    def _prompt(self, org_id: UUID, prompt_id: UUID) -> Prompt:
        prompt = self._load(prompt_id, Prompt, prompt_not_found)
        if prompt.org_id != org_id:  # another tenant's prompt does not exist for this caller
            raise prompt_not_found()
        return prompt

    def _grant_label(self, principal: Principal, org_id: UUID, label: str) -> None:
        try:
            self.grant(principal, org_id, label_permission(label.strip().lower()))
        except Forbidden as exc:
            exc.details["label"] = label
            raise
