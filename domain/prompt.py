"""Prompts: immutable numbered versions, labels moved by compare-and-set, archive/restore, rename.

A prompt has a type fixed at creation: `text` (a template) or `chat` (messages, with named
placeholders a caller fills at render time). Every version records its template format
(`mustache`, or `plain`: only `{{ variable }}` placeholders, the one format before v2) and its
variables (names, and optionally a typed schema). Includes of other prompts are references by name
(domain.composition); checking them needs other aggregates, so the application does it."""
from __future__ import annotations

from copy import deepcopy
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.base import AuditedAggregate
from domain.errors import Conflict, Invalid, NotFound
from domain.ids import prompt_name_index_id
from domain.splits import clean_split, primary
from domain.template import FORMATS, check_text, clean_messages, clean_variables, includes_of, message_text
from domain.template import names_of, variables_of
from domain.values import (
    AUTOMATIC_LABELS, clean_label, clean_message, clean_model_config, clean_new_prompt_name, clean_tags,
    clean_template,
)

TYPES = ("text", "chat")
#: What a version holds besides its number (the shape of `Prompt.versions` entries).
CONTENT_FIELDS = ("type", "template", "messages", "template_format", "variables", "variable_schema")


def _upcast_review(state: dict[str, Any]) -> None:
    """Label events written before governance: direct moves."""
    state.setdefault("review_id", "")
    state.setdefault("requested_by", "")
    state.setdefault("approved_by", [])


def _upcast_content(state: dict[str, Any]) -> None:
    """Events written before prompt model v2: text prompts with `{{ name }}` placeholders only."""
    state.setdefault("messages", None)
    state.setdefault("variable_schema", None)
    state.setdefault("template_format", "plain")


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
        type: str
        messages: list[dict[str, Any]] | None
        variable_schema: list[dict[str, Any]] | None
        template_format: str

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["type"] = "text"
            _upcast_content(state)

        def apply(self, prompt: "Prompt") -> None:
            prompt.org_id = self.org_id
            prompt.name = self.name
            prompt.type = self.type
            prompt.versions = []
            prompt.labels = {}
            #: Labels pointing at a traffic split: label -> [{version, weight}] (labels holds the primary).
            prompt.splits = {}
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
        messages: list[dict[str, Any]] | None
        variable_schema: list[dict[str, Any]] | None
        template_format: str

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _upcast_content(state)

        def apply(self, prompt: "Prompt") -> None:
            prompt._append_version(self)
            if self.idempotency:
                prompt.idempotent_revisions[self.idempotency] = (self.version, self.request_hash)

    class LabelMoved(AuditedAggregate.Event):
        org_id: UUID
        label: str
        from_version: int | None
        #: The version the label points at (a split's primary version).
        to_version: int
        #: A traffic split (domain.splits) the label points at instead of one version, else None.
        split: list[dict[str, int]] | None
        #: The review request that approved the move ("" for a direct move), who requested it and
        #: who approved it (label history shows them).
        review_id: str
        requested_by: str
        approved_by: list[str]

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _upcast_review(state)
            state.setdefault("split", None)

        def apply(self, prompt: "Prompt") -> None:
            prompt.labels[self.label] = self.to_version
            if self.split:
                prompt.splits[self.label] = [dict(e) for e in self.split]
            else:
                prompt.splits.pop(self.label, None)

    class LabelRemoved(AuditedAggregate.Event):
        org_id: UUID
        label: str
        from_version: int
        review_id: str
        requested_by: str
        approved_by: list[str]

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _upcast_review(state)

        def apply(self, prompt: "Prompt") -> None:
            del prompt.labels[self.label]
            prompt.splits.pop(self.label, None)

    class Archived(AuditedAggregate.Event):
        org_id: UUID

        def apply(self, prompt: "Prompt") -> None:
            prompt.archived = True

    class Restored(AuditedAggregate.Event):
        org_id: UUID

        def apply(self, prompt: "Prompt") -> None:
            prompt.archived = False

    class Renamed(AuditedAggregate.Event):
        """The prompt moved to another name (and folder). The old name stays its alias."""

        org_id: UUID
        from_name: str
        to_name: str

        def apply(self, prompt: "Prompt") -> None:
            prompt.name = self.to_name

    @classmethod
    def create(
        cls, id: UUID, org_id: UUID, name: str, template: str | None, variables: list | None,
        model_config: dict[str, Any] | None, tags: list[str], message: str, request_hash: str = "", *,
        type: str = "text", messages: list | None = None, template_format: str = "mustache",
    ) -> "Prompt":
        if type not in TYPES:
            raise Invalid(f"type must be one of {', '.join(TYPES)}", code="INVALID_PROMPT_TYPE",
                          details={"allowed": list(TYPES)})
        content = _content(type, template, messages, variables, _format(template_format))
        return cls._create(
            cls.Created, id=id, org_id=org_id, name=clean_new_prompt_name(name), model_config=clean_model_config(model_config),
            tags=clean_tags(tags), message=clean_message(message), request_hash=request_hash, **content,
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> "Prompt":
        """The copy the aggregate cache hands out on every load (so a failed command cannot taint
        the cached prompt): everything deep-copied as before except the entries of `versions`,
        which are shared. A version is never edited once added, by anyone (only new entries are
        appended, to the copy's own list); a generic deep copy of them cost ~11 µs per version on
        every load: 1.1 ms for a prompt with 100 versions (tests/unit/test_domain_prompt_copy.py)."""
        cls = type(self)
        clone = cls.__new__(cls)
        memo[id(self)] = clone
        state = clone.__dict__
        for name, value in self.__dict__.items():
            state[name] = list(value) if name == "versions" else deepcopy(value, memo)
        return clone

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
        self, base_version: int, template: str | None = None, variables: list | None = None,
        model_config: dict[str, Any] | None = None, tags: list[str] | None = None, message: str = "",
        idempotency: str = "", request_hash: str = "", *, messages: list | None = None,
        template_format: str | None = None,
    ) -> None:
        """Add version n+1. Fields left out are inherited from the latest version; when the content
        changes and `variables` is left out, the latest schema is kept for the variables still used
        (new ones are required strings).

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
        if (template is not None and self.type == "chat") or (messages is not None and self.type == "text"):
            raise Invalid(f"this is a {self.type} prompt: send {'messages' if self.type == 'chat' else 'template'}",
                          code="PROMPT_TYPE_MISMATCH", details={"type": self.type})
        fmt = _format(template_format) if template_format is not None else latest["template_format"]
        changed = template is not None or messages is not None or fmt != latest["template_format"]
        if variables is None:
            variables = _inherited_variables(latest, template, messages, fmt) if changed else (
                latest["variable_schema"] or latest["variables"])
        content = _content(self.type, template if template is not None else latest["template"],
                           messages if messages is not None else latest["messages"], variables, fmt)
        self.trigger_event(
            self.Revised,
            version=self.latest_version + 1, org_id=self.org_id,
            model_config=clean_model_config(model_config if model_config is not None else latest["model_config"]),
            tags=clean_tags(tags if tags is not None else latest["tags"]), message=clean_message(message),
            idempotency=idempotency, request_hash=request_hash,
            **{k: v for k, v in content.items() if k != "type"},
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

    def rename(self, name: str) -> str | None:
        """Move the prompt to `name` (which may change its folder). Returns the cleaned new name, or
        None when it already has that exact name (no event)."""
        self._require_active()
        new = clean_new_prompt_name(name)
        if new == self.name:
            return None
        self.trigger_event(self.Renamed, org_id=self.org_id, from_name=self.name, to_name=new)
        return new

    def label_target(self, label: str) -> dict[str, Any] | None:
        """What a label points at now: {version, split} (split None for one version), or None."""
        if label not in self.labels:
            return None
        return {"version": self.labels[label], "split": self.splits.get(label)}

    def move_label(self, label: str, version: int | None, expected_version: int | None, *,
                   split: list | None = None, review: dict[str, Any] | None = None) -> bool:
        """Point `label` at `version`, or at a traffic `split` of versions. `expected_version` (0 =
        "label unset") is a compare-and-set on the version the label points at now (a split's
        primary one). `review` ({review_id, requested_by, approved_by}) records the approval a
        protected label's move came through. Returns False when nothing changes (no event)."""
        self._require_active()
        label = clean_label(label)
        if (version is None) == (split is None):
            raise Invalid("give a version or a split", code="INVALID_SPLIT")
        if split is not None:
            split = clean_split(split)
            for entry in split:
                self.get_version(entry["version"])
            version = primary(split)
        else:
            self.get_version(version)
        current = self.labels.get(label)
        if expected_version is not None and (current or 0) != expected_version:
            raise Conflict(
                f"label {label!r} does not point at version {expected_version}",
                code="LABEL_CONFLICT",
                details={"label": label, "expected_version": expected_version, "current_version": current},
            )
        if current == version and self.splits.get(label) == split:
            return False
        self.trigger_event(self.LabelMoved, org_id=self.org_id, label=label, from_version=current,
                           to_version=version, split=split, **_review_fields(review))
        return True

    def remove_label(self, label: str, expected_version: int | None, *, review: dict[str, Any] | None = None) -> None:
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
        self.trigger_event(self.LabelRemoved, org_id=self.org_id, label=label, from_version=current,
                           **_review_fields(review))

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
            "version": len(self.versions) + 1, "type": self.type, "template": e.template,
            "messages": [dict(m) for m in e.messages] if e.messages is not None else None,
            "template_format": e.template_format, "variables": list(e.variables),
            "variable_schema": [dict(v) for v in e.variable_schema] if e.variable_schema is not None else None,
            "model_config": dict(e.model_config), "tags": list(e.tags), "message": e.message, "author": e.actor,
        })


def _review_fields(review: dict[str, Any] | None) -> dict[str, Any]:
    review = review or {}
    return {"review_id": review.get("review_id", ""), "requested_by": review.get("requested_by", ""),
            "approved_by": list(review.get("approved_by", []))}


def version_includes(version: dict[str, Any]):
    """The includes a version's content makes (domain.template.Include), in order."""
    texts = [version["template"]] if version["type"] == "text" else [
        m["content"] for m in version["messages"] or () if "content" in m]
    return [i for text in texts for i in includes_of(text, version["template_format"])]


def _format(template_format: str) -> str:
    if template_format not in FORMATS:
        raise Invalid(f"template_format must be one of {', '.join(FORMATS)}", code="INVALID_TEMPLATE_FORMAT",
                      details={"allowed": list(FORMATS)})
    return template_format


def _content(type_: str, template: str | None, messages: list | None, variables: list | None,
             fmt: str) -> dict[str, Any]:
    """The content fields of a Created/Revised event, validated."""
    if type_ == "text":
        if messages is not None:
            raise Invalid("a text prompt has a template, not messages", code="PROMPT_TYPE_MISMATCH",
                          details={"type": "text"})
        if fmt == "plain":
            text, _ = clean_template(template, None)  # the checks of the original format, unchanged
        else:
            if not isinstance(template, str) or not template.strip():
                raise Invalid("template must be a non-empty string", code="INVALID_TEMPLATE")
            check_text(template, fmt)
            text = template
        used, mentioned = variables_of(text, fmt), names_of(text, fmt)
        clean_messages_ = None
    else:
        if template is not None and template != "":
            raise Invalid("a chat prompt has messages, not a template", code="PROMPT_TYPE_MISMATCH",
                          details={"type": "chat"})
        clean_messages_ = clean_messages(messages, fmt)
        text = ""
        contents = [m["content"] for m in clean_messages_ if "content" in m]
        used = list(dict.fromkeys(n for c in contents for n in variables_of(c, fmt)))
        mentioned = list(dict.fromkeys(n for c in contents for n in names_of(c, fmt)))
    names, schema = clean_variables(variables, used, mentioned)
    return {"type": type_, "template": text, "messages": clean_messages_, "template_format": fmt,
            "variables": names, "variable_schema": schema}


def _inherited_variables(latest: dict[str, Any], template: str | None, messages: list | None, fmt: str) -> list | None:
    """Variables of a revision that changed the content without declaring them: the latest schema
    for the names the content still mentions (inside sections too), new top-level names as required
    strings; no schema, no declaration."""
    if latest["variable_schema"] is None:
        return None
    if template is not None:
        texts = [template]
    elif messages is not None:
        texts = [m["content"] for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]
    else:
        texts = [latest["template"]] if latest["type"] == "text" else [
            m["content"] for m in latest["messages"] or () if "content" in m]
    used = set(n for t in texts for n in variables_of(t, fmt))
    mentioned = list(dict.fromkeys(n for t in texts for n in names_of(t, fmt)))
    known = {spec["name"]: spec for spec in latest["variable_schema"]}
    return [known.get(n, {"name": n, "type": "string", "required": True}) for n in mentioned
            if n in known or n in used]


def searchable_text(version: dict[str, Any]) -> str:
    """What search indexes for a version: its template, or the text of all its messages."""
    return version["template"] if version["type"] == "text" else message_text(version["messages"] or [])


class PromptNameIndex(Aggregate):
    """Claims a prompt name within an organisation (case-insensitive). A renamed prompt keeps its old
    names claimed: they stay its aliases (fetches and includes by an old name keep resolving)."""

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
