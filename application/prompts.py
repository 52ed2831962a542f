"""Prompt commands (create, revise, rename, labels, archive) and strongly consistent prompt reads.

Includes are checked when a version is written: every reference must resolve (same organisation,
the label or version exists) without a cycle or more than five levels, against the aggregates now.
Reads resolve them again (a later label move may break what a write could not see)."""
from __future__ import annotations

from datetime import datetime
from itertools import takewhile
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, project_aggregate

from application.base import BaseApp, request_fingerprint
from application.commands import command, retrying
from application.principal import Principal
from application.results import CommandResult
from domain.composition import Lookup, Resolution, Target, has_includes, resolve
from domain.errors import Conflict, DomainError, Forbidden, Invalid, LimitExceeded, NotFound
from domain.ids import idempotent_id, prompt_name_index_id
from domain.permissions import Permission, label_permission
from domain.prompt import Prompt, PromptNameIndex
from domain.template import Include, check_values, render_messages, render_text
from domain.values import clean_label, clean_prompt_name


def prompt_not_found(message: str = "prompt not found") -> NotFound:
    return NotFound(message, code="PROMPT_NOT_FOUND")


def target_of(prompt: Prompt, version: dict[str, Any], label: str | None) -> Target:
    return Target(str(prompt.id), prompt.name, version["version"], label, version["type"], version["template"],
                  version["messages"], version["template_format"], list(version["variables"]),
                  version["variable_schema"])


def _given(**fields: Any) -> dict[str, Any]:
    """The request fields actually given: what an idempotency fingerprint covers (fields added by
    later API versions count only when sent, so older clients' fingerprints are unchanged)."""
    return {k: v for k, v in fields.items() if v is not None}


class PromptCommands(BaseApp):
    @command
    def create_prompt(
        self, principal: Principal, org_id: UUID, *, name: str, template: str | None = None,
        variables: list | None = None, model_config: dict[str, Any] | None = None, tags: list[str] | None = None,
        message: str = "", request_id: str, idempotency_key: str | None = None, type: str = "text",
        messages: list | None = None, template_format: str | None = None, checked_head: int | None = None,
    ) -> CommandResult:
        """Counted on the organisation's prompt quota (domain.quota, adr/0025), in the same save as
        the prompt; concurrent creations in the organisation are counted and saved together under
        the quota's lock (application.quota_batches). The prompt is built, its name and
        Idempotency-Key looked up, and the caller authorised before; what they refuse is raised in
        the order it always was (grant, key reuse or replay, content, name, includes, limit). The
        Organisation itself is not written.

        The name's claim (its PromptNameIndex, created at version 1) is in the same save, so a taken
        name is refused by the save itself. On a first attempt, a version without includes leaves
        the name to the save instead of reading its claim first (adr/0031): the refused save is
        retried by `@command`, and the retry reads the claim and answers PROMPT_NAME_TAKEN (or
        the replay, for a concurrent twin with the same Idempotency-Key). Names are claimed for
        good (renames keep old names as aliases), so a name seen taken is remembered and refused at
        once; a refusal by the plan's limit checks the name first, as the order above says."""
        payload = {"org": str(org_id), "name": name, "template": template, "variables": variables,
                   "model_config": model_config, "tags": tags, "message": message,
                   **_given(type=None if type == "text" else type, messages=messages, template_format=template_format)}
        prompt, taken, refused = None, False, None
        try:
            prompt_id, fingerprint, replay = self._idempotent(principal, f"org:{org_id}:prompts", idempotency_key,
                                                              payload)
            if replay is None:
                prompt = Prompt.create(prompt_id, org_id, name, template, variables, model_config, tags or [], message,
                                       request_hash=fingerprint, type=type, messages=messages,
                                       template_format="mustache" if template_format is None else template_format)
                index_id = prompt_name_index_id(org_id, prompt.name)
                version = prompt.versions[-1]
                read_claim = (retrying() or index_id in self.names_taken
                              or has_includes(version["template"], version["messages"], version["template_format"]))
                taken = self._name_taken(index_id) if read_claim else False
        except DomainError as exc:
            refused = exc
        org = self.authorise(principal, org_id, Permission.PROMPTS_WRITE, checked_head=checked_head).org
        if refused is not None:
            raise refused
        if replay is not None:
            return replay
        if taken:  # a concurrent claim after the look-up fails the save instead, and the retry says so
            raise Conflict(f"a prompt named {prompt.name!r} already exists", code="PROMPT_NAME_TAKEN",
                           details={"name": prompt.name})
        self._check_composition(org_id, prompt, prompt.versions[-1])
        index = PromptNameIndex(org_id=org_id, name=prompt.name, prompt_id=prompt_id)
        try:
            position = self.quota_batches.count_and_save(org, prompt_id, prompt, index)
        except LimitExceeded:
            if not read_claim and self._name_taken(index_id):  # the name comes before the limit
                raise Conflict(f"a prompt named {prompt.name!r} already exists", code="PROMPT_NAME_TAKEN",
                               details={"name": prompt.name}) from None
            raise
        return CommandResult(prompt_id, position, version=1)

    @command
    def revise_prompt(
        self, principal: Principal, org_id: UUID, prompt_id: UUID, *, base_version: int, request_id: str,
        template: str | None = None, variables: list | None = None, model_config: dict[str, Any] | None = None,
        tags: list[str] | None = None, message: str = "", idempotency_key: str | None = None,
        messages: list | None = None, template_format: str | None = None, checked_head: int | None = None,
    ) -> CommandResult:
        """`checked_head`: the request's own check of the log head (BaseApp.authorise)."""
        fingerprint = request_fingerprint({"base_version": base_version, "template": template, "variables": variables,
                                           "model_config": model_config, "tags": tags, "message": message,
                                           **_given(messages=messages, template_format=template_format)})
        token = idempotent_id(principal.actor, f"prompt:{prompt_id}:revisions", idempotency_key).hex if idempotency_key else ""
        self.authorise(principal, org_id, Permission.PROMPTS_WRITE, checked_head=checked_head)
        prompt = self._prompt_to_change(org_id, prompt_id)
        if token and (done := prompt.revision_for(token, fingerprint)) is not None:
            return CommandResult(prompt_id, self.head_position(), version=done, replayed=True)
        prompt.revise(base_version, template=template, variables=variables, model_config=model_config, tags=tags,
                      message=message, idempotency=token, request_hash=fingerprint, messages=messages,
                      template_format=template_format)
        self._check_composition(org_id, prompt, prompt.versions[-1])
        version = prompt.latest_version
        return CommandResult(prompt_id, self._save_kept(prompt), version=version)

    @command
    def rename_prompt(self, principal: Principal, org_id: UUID, prompt_id: UUID, name: str,
                      request_id: str) -> CommandResult:
        """Move a prompt to another name or folder. Its old names stay claimed as aliases, so fetches
        and includes by an old name keep resolving (adr/0013); another prompt's name or alias is 409."""
        self.authorise(principal, org_id, Permission.PROMPTS_WRITE)
        prompt = self._prompt_to_change(org_id, prompt_id)
        new = prompt.rename(name)
        if new is None:
            return CommandResult(prompt_id, None)
        index_id = prompt_name_index_id(org_id, new)
        holder = self._name_holder(index_id)
        if holder is not None and holder != prompt_id:
            raise Conflict(f"a prompt named {new!r} already exists", code="PROMPT_NAME_TAKEN", details={"name": new})
        if holder is None:  # a new name; an old alias of this very prompt (or a change of case) is reused
            return CommandResult(prompt_id, self._save_kept(prompt, PromptNameIndex(org_id=org_id, name=new,
                                                                                    prompt_id=prompt_id)))
        return CommandResult(prompt_id, self._save_kept(prompt))

    @command
    def move_label(
        self, principal: Principal, org_id: UUID, prompt_id: UUID, label: str, version: int | None, request_id: str,
        expected_version: int | None = None, split: list | None = None, checked_head: int | None = None,
    ) -> CommandResult:
        """Point a label at a version or a traffic split (compare-and-set). A protected label is
        refused (409 LABEL_PROTECTED): its changes go through review requests (application.governance)."""
        self._grant_label(principal, org_id, label, checked_head).org.require_unprotected(clean_label(label))
        prompt = self._prompt_to_change(org_id, prompt_id)
        changed = prompt.move_label(label, version, expected_version, split=split)
        at = prompt.labels.get(clean_label(label))
        return CommandResult(prompt_id, self._save_kept(prompt) if changed else None, version=at)

    @command
    def remove_label(
        self, principal: Principal, org_id: UUID, prompt_id: UUID, label: str, request_id: str,
        expected_version: int | None = None, checked_head: int | None = None,
    ) -> CommandResult:
        self._grant_label(principal, org_id, label, checked_head).org.require_unprotected(clean_label(label))
        prompt = self._prompt_to_change(org_id, prompt_id)
        prompt.remove_label(label, expected_version)
        return CommandResult(prompt_id, self._save_kept(prompt))

    @command
    def archive_prompt(self, principal: Principal, org_id: UUID, prompt_id: UUID, request_id: str) -> CommandResult:
        self.authorise(principal, org_id, Permission.PROMPTS_WRITE)
        prompt = self._prompt_to_change(org_id, prompt_id)
        prompt.archive()
        return CommandResult(prompt_id, self._save_kept(prompt))

    @command
    def restore_prompt(self, principal: Principal, org_id: UUID, prompt_id: UUID, request_id: str) -> CommandResult:
        self.authorise(principal, org_id, Permission.PROMPTS_WRITE)
        prompt = self._prompt_to_change(org_id, prompt_id)
        prompt.restore()
        return CommandResult(prompt_id, self._save_kept(prompt))

    # -- strongly consistent reads ----------------------------------------------------------
    def read_prompt(self, principal: Principal, org_id: UUID, prompt_id: UUID, as_of: datetime | None = None, *,
                    checked_head: int | None = None) -> Prompt:
        """The prompt now, or as it was at `as_of`: folded from the prefix of its stream up to the
        first event recorded after `as_of` (inclusive of an event stamped exactly `as_of`).

        The prefix, not a filter on timestamps: if a clock stepped back, a later event may carry an
        earlier timestamp, and skipping an event in the middle would fold a broken history.
        `checked_head`: the request's own check of the log head (BaseApp.authorise)."""
        self.authorise(principal, org_id, Permission.PROMPTS_READ, checked_head=checked_head)
        prompt = self._prompt_at(org_id, prompt_id, as_of)
        if prompt is None:
            raise prompt_not_found("prompt did not exist at that time" if as_of else "prompt not found")
        return prompt

    def prompt_id_by_name(self, principal: Principal, org_id: UUID, name: str, as_of: datetime | None = None, *,
                          checked_head: int | None = None) -> UUID:
        """The prompt a name (or an old name, an alias) names, as of a moment when given.
        `checked_head`: the request's own check of the log head (BaseApp.authorise)."""
        self.authorise(principal, org_id, Permission.PROMPTS_READ, checked_head=checked_head)
        try:
            index_id = prompt_name_index_id(org_id, clean_prompt_name(name))
        except Invalid:
            raise prompt_not_found() from None
        holder = self._name_holder(index_id, as_of)
        if holder is None:
            raise prompt_not_found("prompt did not exist at that time" if as_of and self._name_holder(index_id)
                                   else "prompt not found")
        return holder

    def resolve_prompt(self, principal: Principal, org_id: UUID, prompt_id: UUID, *, label: str | None = None,
                       version: int | None = None, as_of: datetime | None = None) -> tuple[Prompt, dict, Resolution]:
        """The version a read names and its composition, every include resolved against the event
        stream now, or as of `as_of` (the text production served at that moment)."""
        prompt = self.read_prompt(principal, org_id, prompt_id, as_of)
        chosen = prompt.resolve(label=label, version=version)
        return prompt, chosen, self.compose(org_id, prompt, chosen, label, as_of)

    def compose(self, org_id: UUID, prompt: Prompt, chosen: dict, label: str | None,
                as_of: datetime | None = None) -> Resolution:
        return resolve(target_of(prompt, chosen, label), self._lookup(org_id, as_of))

    def render_prompt(
        self, principal: Principal, org_id: UUID, prompt_id: UUID, values: dict[str, Any],
        label: str | None = None, version: int | None = None, *, placeholders: dict[str, list] | None = None,
        strict: bool = True, as_of: datetime | None = None,
    ) -> tuple[dict[str, Any], Resolution, str | list[dict[str, Any]]]:
        """(version, composition, rendered text or messages): variables validated against the
        composition's schema (every problem listed), includes resolved, placeholders spliced."""
        _, chosen, composed = self.resolve_prompt(principal, org_id, prompt_id, label=label, version=version,
                                                  as_of=as_of)
        try:
            given = check_values(composed.variable_schema, composed.variables, values, strict=strict)
        except Invalid as exc:  # a chat render names missing placeholders in the same answer
            if chosen["type"] == "chat":
                missing = [m["name"] for m in composed.messages or () if m.get("type") == "placeholder"
                           and m["name"] not in (placeholders or {})]
                if missing:
                    exc.details.setdefault("problems", []).extend(
                        {"placeholder": n, "problem": "missing"} for n in missing)
                    exc.details["missing_placeholders"] = missing
            raise
        fmt = chosen["template_format"]
        if chosen["type"] == "chat":
            return chosen, composed, render_messages(composed.messages, given, placeholders or {}, fmt)
        return chosen, composed, render_text(composed.template, given, fmt)

    # -- helpers ----------------------------------------------------------------------------
    def _prompt(self, org_id: UUID, prompt_id: UUID) -> Prompt:
        prompt = self._load(prompt_id, Prompt, prompt_not_found)
        if prompt.org_id != org_id:  # another tenant's prompt does not exist for this caller
            raise prompt_not_found()
        return prompt

    def _prompt_to_change(self, org_id: UUID, prompt_id: UUID) -> Prompt:
        """The prompt for a command that changes it: the object this process last saved when the
        prompt cache still holds it (taken: current as of the command's head check, adr/0026), else
        loaded from the repository. Save it with `_save_kept`."""
        cache = self.prompt_cache
        prompt = cache.take(prompt_id) if cache is not None else None
        if prompt is None:
            return self._prompt(org_id, prompt_id)
        if prompt.org_id != org_id:
            raise prompt_not_found()
        return prompt

    def _prompt_at(self, org_id: UUID, prompt_id: UUID, as_of: datetime | None) -> Prompt | None:
        if as_of is None:
            try:
                return self._prompt(org_id, prompt_id)
            except NotFound:
                return None
        events = list(takewhile(lambda e: e.timestamp <= as_of, self.events.get(prompt_id)))
        prompt = project_aggregate(None, events) if events else None
        return prompt if isinstance(prompt, Prompt) and prompt.org_id == org_id else None

    def _name_holder(self, index_id: UUID, as_of: datetime | None = None) -> UUID | None:
        """The prompt holding a name index (None when unclaimed, or not yet claimed at `as_of`)."""
        try:  # an index never changes after it is created: read it without the cache's deep copy
            index = self.repository.get(index_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            return None
        if not isinstance(index, PromptNameIndex) or (as_of is not None and index.created_on > as_of):
            return None
        return index.prompt_id

    def _lookup(self, org_id: UUID, as_of: datetime | None) -> Lookup:
        """Includes resolved against the event stream (now, or as of a moment), in one organisation:
        a name is looked up in this organisation only, so no text can reach another tenant's prompt."""

        def lookup(include: Include) -> Target | None:
            try:
                index_id = prompt_name_index_id(org_id, clean_prompt_name(include.name))
            except Invalid:
                return None
            holder = self._name_holder(index_id, as_of)
            prompt = self._prompt_at(org_id, holder, as_of) if holder is not None else None
            if prompt is None:
                return None
            label = include.selector_label if include.version is None else None
            try:
                chosen = prompt.resolve(label=label, version=include.version)
            except NotFound:
                return None
            return target_of(prompt, chosen, label)

        return lookup

    def _check_composition(self, org_id: UUID, prompt: Prompt, version: dict[str, Any]) -> None:
        """A version's includes must resolve now (422 with the problem and the path otherwise)."""
        if has_includes(version["template"], version["messages"], version["template_format"]):
            resolve(target_of(prompt, version, None), self._lookup(org_id, None))

    def _grant_label(self, principal: Principal, org_id: UUID, label: str, checked_head: int | None = None):
        try:
            return self.authorise(principal, org_id, label_permission(label.strip().lower()), checked_head=checked_head)
        except Forbidden as exc:
            exc.details["label"] = label
            raise
