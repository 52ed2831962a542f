"""The catalogue read model: each prompt's current state, its tags, labels, names (aliases), every
version and what each version includes.

It folds every Prompt event, so the reads it serves (lists, folders, the by-name fetch with its
includes resolved, version history, diffs, dependents, keyword search) all come from its own rows at
one position: a label never points at a version the read model does not hold."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import Integer, and_, exists, func, literal, null, or_

from domain.composition import Lookup, Resolution, Target, has_includes, resolve
from domain.errors import Invalid
from domain.prompt import Prompt, searchable_text, version_includes
from domain.template import Include
from domain.values import AUTOMATIC_LABELS, clean_prompt_name, folder_of
from projections.base import _PLAIN, Projection, json_safe
from projections.batch import Unit
from projections.catalogue.tables import (
    prompt_aliases, prompt_dependencies, prompt_labels, prompt_tags, prompt_versions, prompts,
)
from projections.events import Envelope
from projections.paging import clamp, decode_cursor, encode_cursor
from projections.tenancy import of_org, rows_of

SORTS = {"name": ("name_key", False), "-name": ("name_key", True),
         "updated_at": ("updated_at", False), "-updated_at": ("updated_at", True),
         "created_at": ("created_at", False), "-created_at": ("created_at", True)}


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _version_values(env: Envelope, version: int, type_: str, org_id: str, prompt_id: str, actor: str, at: datetime
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the version's row, the values of the prompt's row that the version sets: its content, with the
    searchable text as `template`), each value computed once and shared by the two rows (rows are
    values: never changed in place), for the fold of a Created or a Revised (most of a rebuild's time
    in the catalogue's handlers)."""
    e = env.event
    messages, variable_schema, model_config = e.messages, e.variable_schema, e.model_config
    if type(messages) not in _PLAIN:
        messages = json_safe(messages)
    if type(variable_schema) not in _PLAIN:
        variable_schema = json_safe(variable_schema)
    if type(model_config) not in _PLAIN:
        model_config = json_safe(model_config)
    variables, tags = list(e.variables), list(e.tags)
    template = e.template
    row = {"org_id": org_id, "prompt_id": prompt_id, "version": version, "type": type_, "template": template,
           "messages": messages, "template_format": e.template_format, "variables": variables,
           "variable_schema": variable_schema, "model_config": model_config, "tags": tags, "message": e.message,
           "author": actor, "created_at": at, "position": env.position}
    searched = searchable_text({"type": type_, "template": template, "messages": e.messages})
    current = {"type": type_, "template": searched, "messages": messages, "template_format": e.template_format,
               "variables": variables, "variable_schema": variable_schema, "model_config": model_config, "tags": tags}
    return row, current


class Catalogue(Projection):
    name = "catalogue"
    #: 2: holds every version (was the separate `versions` read model). 3: prompt model v2 (types,
    #: messages, template formats, variable schemas, folders, aliases, dependencies). 4: splits.
    schema_version = 4
    tables = (prompts, prompt_tags, prompt_labels, prompt_versions, prompt_aliases, prompt_dependencies)
    appended = (prompt_versions, prompt_dependencies)
    groups = {prompt_tags: ("org_id", "prompt_id"), prompt_labels: ("org_id", "prompt_id")}

    # -- folding ----------------------------------------------------------------------------
    def prepare(self, unit: Unit, batch: Sequence[Envelope]) -> None:
        p, tags, labels, aliases = unit[prompts], unit[prompt_tags], unit[prompt_labels], unit[prompt_aliases]
        for env in batch:
            e = env.event
            if not isinstance(e, Prompt.Event):
                continue
            key = (env.org_id, env.target_id)
            p.need(key)
            if isinstance(e, (Prompt.Created, Prompt.Revised)):
                tags.need_group(key)
                if isinstance(e, Prompt.Created):
                    aliases.need((env.org_id, e.name.casefold()))
                # the names the version includes are looked up in the aliases (a revision keeps the
                # prompt's type: chat when it has messages; a wrong guess only costs a query later)
                type_ = e.type if isinstance(e, Prompt.Created) else "text" if e.messages is None else "chat"
                try:
                    names = self._include_keys(unit, env, type_)
                except Exception:  # noqa: BLE001 - a hint only: the handler parses (and fails) for real
                    names = []
                for name in names:
                    aliases.need((env.org_id, name))
            elif isinstance(e, Prompt.Renamed):
                aliases.need((env.org_id, e.to_name.casefold()))
            elif isinstance(e, (Prompt.LabelMoved, Prompt.LabelRemoved)):
                labels.need_group(key)

    @singledispatchmethod
    def when(self, event: Any, env: Envelope, unit: Unit) -> None:
        pass

    @when.register
    def _(self, event: Prompt.Created, env: Envelope, unit: Unit) -> None:
        org_id, prompt_id, actor, at, name = env.org_id, env.target_id, env.actor, env.at, event.name
        version, current = _version_values(env, 1, event.type, org_id, prompt_id, actor, at)
        unit[prompts].insert({
            "org_id": org_id, "prompt_id": prompt_id, "name": name, "name_key": name.casefold(), "latest_version": 1,
            **current, "labels": {}, "splits": {}, "folder": folder_of(name), "archived": False, "created_at": at,
            "created_by": actor, "updated_at": at, "updated_by": actor, "position": env.position,
        })
        self._alias(unit, env, name)
        unit[prompt_versions].add(version)
        self._dependencies(unit, env, 1, event.type)
        self._set_tags(unit, env, event.tags)

    @when.register
    def _(self, event: Prompt.Revised, env: Envelope, unit: Unit) -> None:
        type_ = self._type(unit, env)
        version, current = _version_values(env, event.version, type_, env.org_id, env.target_id, env.actor, env.at)
        self._touch(unit, env, latest_version=event.version, **current)
        unit[prompt_versions].add(version)
        self._dependencies(unit, env, event.version, type_)
        self._set_tags(unit, env, event.tags)

    @when.register
    def _(self, event: Prompt.Renamed, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, name=event.to_name, name_key=event.to_name.casefold(), folder=folder_of(event.to_name))
        self._alias(unit, env, event.to_name)

    @when.register
    def _(self, event: Prompt.LabelMoved, env: Envelope, unit: Unit) -> None:
        labels = unit[prompt_labels]
        labels.delete((env.org_id, env.target_id, event.label))
        labels.insert(dict(org_id=env.org_id, prompt_id=env.target_id, label=event.label, version=event.to_version,
                           split=json_safe(event.split)))
        self._touch(unit, env, **self._labels(unit, env))

    @when.register
    def _(self, event: Prompt.LabelRemoved, env: Envelope, unit: Unit) -> None:
        unit[prompt_labels].delete((env.org_id, env.target_id, event.label))
        self._touch(unit, env, **self._labels(unit, env))

    @when.register
    def _(self, event: Prompt.Archived, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, archived=True)

    @when.register
    def _(self, event: Prompt.Restored, env: Envelope, unit: Unit) -> None:
        self._touch(unit, env, archived=False)

    @staticmethod
    def _type(unit: Unit, env: Envelope) -> str:
        row = unit[prompts].get((env.org_id, env.target_id))
        if row is None:
            raise LookupError(f"catalogue: no prompt {env.target_id} to revise (position {env.position})")
        return row["type"]

    @staticmethod
    def _alias(unit: Unit, env: Envelope, name: str) -> None:
        """Record a name the prompt holds (an old alias regained on a rename back keeps its row)."""
        key = name.casefold()
        aliases = unit[prompt_aliases]
        if aliases.get((env.org_id, key)) is None:
            aliases.insert(dict(org_id=env.org_id, name_key=key, prompt_id=env.target_id, name=name))

    @staticmethod
    def _includes(unit: Unit, env: Envelope, type_: str) -> list[Include]:
        memo = (env.position, type_)
        found = unit.memo.get(memo)
        if found is None:
            e = env.event
            texts = [e.template] if type_ == "text" else [m["content"] for m in e.messages or () if "content" in m]
            if all(isinstance(t, str) and ">" not in t for t in texts):
                found = []  # an include is a `{{> name}}` tag: nothing to parse
            else:
                found = version_includes({"type": type_, "template": e.template, "messages": e.messages,
                                          "template_format": e.template_format})
            unit.memo[memo] = found
        return found

    @classmethod
    def _include_keys(cls, unit: Unit, env: Envelope, type_: str) -> list[str]:
        keys = []
        for include in cls._includes(unit, env, type_):
            try:
                keys.append(clean_prompt_name(include.name).casefold())
            except Invalid:
                pass
        return keys

    @classmethod
    def _dependencies(cls, unit: Unit, env: Envelope, version: int, type_: str) -> None:
        """What the version includes, each name resolved through the aliases (a name, once claimed,
        names the same prompt forever: renames keep old names as aliases)."""
        includes = cls._includes(unit, env, type_)
        if not includes:
            return
        aliases = unit[prompt_aliases]
        rows = []
        for ordinal, include in enumerate(includes):
            try:
                key = clean_prompt_name(include.name).casefold()
            except Invalid:
                key = None
            alias = aliases.get((env.org_id, key)) if key else None
            rows.append(dict(org_id=env.org_id, prompt_id=env.target_id, version=version, ordinal=ordinal,
                             dependency_id=alias["prompt_id"] if alias else None, dependency_name=include.name,
                             label=include.selector_label if include.version is None else None,
                             dependency_version=include.version))
        unit[prompt_dependencies].extend(rows)

    @staticmethod
    def _labels(unit: Unit, env: Envelope) -> dict[str, Any]:
        """The prompt row's `labels` (label -> version) and `splits` (label -> split) columns."""
        rows = sorted(unit[prompt_labels].rows((env.org_id, env.target_id)), key=lambda r: r["label"])
        return {"labels": {r["label"]: r["version"] for r in rows},
                "splits": {r["label"]: r["split"] for r in rows if r["split"]}}

    @staticmethod
    def _touch(unit: Unit, env: Envelope, **values: Any) -> None:
        unit[prompts].update((env.org_id, env.target_id), updated_at=env.at, updated_by=env.actor,
                             position=env.position, **values)

    @staticmethod
    def _set_tags(unit: Unit, env: Envelope, tags: list[str]) -> None:
        rows = unit[prompt_tags]
        group = (env.org_id, env.target_id)
        wanted = set(tags)
        keys = rows.group(group)
        if {k[1] for k in keys} == wanted and len(keys) == len(wanted):  # (org_id, tag, prompt_id)
            return  # a revision that keeps the tags
        for key in keys:
            rows.delete(key)
        for t in sorted(wanted):
            rows.insert({"org_id": env.org_id, "tag": t, "prompt_id": env.target_id})

    # -- queries ----------------------------------------------------------------------------
    def get(self, org_id: str, prompt_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(rows_of(prompts, org_id).where(prompts.c.prompt_id == str(prompt_id))).first()
        return dict(row._mapping) if row else None

    def fetch(self, org_id: str, name: str, *, label: str | None = None, version: int | None = None
              ) -> dict[str, Any] | None:
        """The by-name fetch path in one round trip: the prompt, the version that `version` / `label`
        (default latest) resolves to, and that version's content.

        None when no such prompt. `resolved` is None when the label is not set; `template` is None
        when the prompt has no such version."""
        p, lb, pv, al = prompts, prompt_labels, prompt_versions, prompt_aliases
        if version is not None:
            target = literal(version, Integer)
        elif label is None or label in AUTOMATIC_LABELS:
            target = p.c.latest_version
        else:
            target = lb.c.version
        split = lb.c.split if target is lb.c.version else null()
        query = rows_of(al, org_id, p.c.prompt_id, p.c.name, p.c.latest_version, p.c.archived, target.label("resolved"),
                        split.label("split"), pv.c.type, pv.c.template, pv.c.messages, pv.c.template_format, pv.c.variables,
                        pv.c.variable_schema, pv.c.model_config, pv.c.tags).select_from(al)
        query = query.join(p, and_(p.c.org_id == al.c.org_id, p.c.prompt_id == al.c.prompt_id))
        if target is lb.c.version:
            query = query.outerjoin(lb, and_(lb.c.org_id == p.c.org_id, lb.c.prompt_id == p.c.prompt_id,
                                             lb.c.label == label))
        query = query.outerjoin(pv, and_(pv.c.org_id == p.c.org_id, pv.c.prompt_id == p.c.prompt_id,
                                         pv.c.version == target))
        query = query.where(al.c.name_key == name.strip().casefold())
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def compose(self, org_id: str, row: dict[str, Any], label: str | None) -> Resolution:
        """A fetched version (`fetch`'s row) with its includes resolved against this read model's
        own rows: the dependencies' versions as the catalogue holds them now."""
        target = Target(row["prompt_id"], row["name"], row["resolved"], label, row["type"], row["template"],
                        row["messages"], row["template_format"], list(row["variables"]), row["variable_schema"])
        if not has_includes(row["template"], row["messages"], row["template_format"]):
            return Resolution(row["template"] if row["type"] == "text" else None,
                              row["messages"] if row["type"] == "chat" else None, [], list(row["variables"]),
                              row["variable_schema"])
        return resolve(target, self.lookup(org_id))

    def lookup(self, org_id: str) -> Lookup:
        """Includes resolved within one organisation against the catalogue's rows."""

        def lookup(include: Include) -> Target | None:
            try:
                name = clean_prompt_name(include.name)
            except Invalid:
                return None
            label = include.selector_label if include.version is None else None
            row = self.fetch(org_id, name, label=label, version=include.version)
            if row is None or row["resolved"] is None or row["template"] is None:
                return None
            return Target(row["prompt_id"], row["name"], row["resolved"], label, row["type"], row["template"],
                          row["messages"], row["template_format"], list(row["variables"]), row["variable_schema"])

        return lookup

    def dependents(self, org_id: str, prompt_id: str) -> list[dict[str, Any]]:
        """The prompts whose latest version, or a version one of their labels points at, includes
        this prompt (by any of its names): what a change to it will affect."""
        d, p = prompt_dependencies, prompts
        query = (rows_of(d, org_id, d.c.prompt_id, d.c.version, d.c.label, d.c.dependency_version, p.c.name,
                         p.c.latest_version, p.c.labels, p.c.archived)
                 .join(p, and_(p.c.org_id == d.c.org_id, p.c.prompt_id == d.c.prompt_id))
                 .where(d.c.dependency_id == str(prompt_id)).order_by(p.c.name_key, d.c.version))
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            labels = sorted(label for label, v in r["labels"].items() if v == r["version"])
            if r["version"] != r["latest_version"] and not labels:
                continue  # an old version nothing serves any more
            entry = out.setdefault(r["prompt_id"], {"prompt_id": r["prompt_id"], "name": r["name"],
                                                    "archived": r["archived"], "versions": [], "labels": [],
                                                    "includes": []})
            if r["version"] not in entry["versions"]:
                entry["versions"].append(r["version"])
            entry["labels"] = sorted({*entry["labels"], *labels, *(["latest"] if r["version"] == r["latest_version"] else [])})
            selector = {"label": r["label"], "version": r["dependency_version"]}
            if selector not in entry["includes"]:
                entry["includes"].append(selector)
        return list(out.values())

    def folders(self, org_id: str, parent: str = "", *, archived: bool = False) -> dict[str, Any]:
        """The sub-folders of `parent` ('' = the top level) with how many prompts each holds (in all
        its sub-folders too), and how many prompts sit directly in `parent`."""
        query = rows_of(prompts, org_id, prompts.c.folder, func.count()).where(prompts.c.archived == archived)
        if parent:
            query = query.where(or_(prompts.c.folder == parent, prompts.c.folder.startswith(parent + "/", autoescape=True)))
        with self.engine.connect() as conn:
            counts = conn.execute(query.group_by(prompts.c.folder)).all()
        children: dict[str, int] = {}
        direct = 0
        for folder, count in counts:
            rest = folder[len(parent) + 1:] if parent else folder
            if folder == parent:
                direct += count
                continue
            child = rest.split("/", 1)[0]
            children[child] = children.get(child, 0) + count
        path = (parent + "/") if parent else ""
        return {"parent": parent, "prompts": direct,
                "folders": [{"name": c, "path": path + c, "prompts": n} for c, n in sorted(children.items())]}

    def list(
        self, org_id: str, *, tag: str | None = None, label: str | None = None, name_prefix: str | None = None,
        archived: bool | None = False, sort: str = "name", limit: int = 50, cursor: str | None = None,
        folder: str | None = None,
    ) -> Page:
        """Keyset pagination: the cursor holds the last row's (sort, sort key, prompt id)."""
        if sort not in SORTS:
            raise Invalid(f"unknown sort {sort!r}", code="INVALID_SORT", details={"allowed": sorted(SORTS)})
        limit = clamp(limit)
        column_name, descending = SORTS[sort]
        column = prompts.c[column_name]
        query = rows_of(prompts, org_id)
        if archived is not None:
            query = query.where(prompts.c.archived == archived)
        if folder is not None:  # the folder's own prompts ('' = the top level)
            query = query.where(prompts.c.folder == folder)
        if name_prefix:
            key = name_prefix.casefold()
            query = query.where(prompts.c.name_key >= key, prompts.c.name_key < key + "\U0010ffff")
        if tag:
            query = query.where(exists().where(of_org(prompt_tags, org_id), prompt_tags.c.tag == tag.lower(),
                                               prompt_tags.c.prompt_id == prompts.c.prompt_id))
        if label and label not in AUTOMATIC_LABELS:  # every prompt has `latest`
            query = query.where(exists().where(of_org(prompt_labels, org_id), prompt_labels.c.label == label.lower(),
                                               prompt_labels.c.prompt_id == prompts.c.prompt_id))
        if cursor:
            value, last_id = self._decode(cursor, sort, column_name)
            after = (column < value) if descending else (column > value)
            tie = and_(column == value, (prompts.c.prompt_id < last_id) if descending else (prompts.c.prompt_id > last_id))
            query = query.where(or_(after, tie))
        order = (column.desc(), prompts.c.prompt_id.desc()) if descending else (column, prompts.c.prompt_id)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(*order).limit(limit + 1))]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1][column_name]
            next_cursor = encode_cursor(sort, last.isoformat() if hasattr(last, "isoformat") else last,
                                        rows[-1]["prompt_id"])
        return Page(rows, next_cursor)

    @staticmethod
    def _decode(cursor: str, sort: str, column_name: str) -> tuple[Any, str]:
        cursor_sort, value, prompt_id = decode_cursor(cursor, 3)
        if cursor_sort != sort or not isinstance(value, str) or not isinstance(prompt_id, str):
            raise Invalid("invalid or foreign cursor", code="INVALID_CURSOR")
        if column_name != "name_key":
            try:
                return datetime.fromisoformat(value), prompt_id
            except ValueError:
                raise Invalid("invalid or foreign cursor", code="INVALID_CURSOR") from None
        return value, prompt_id

    # -- version history --------------------------------------------------------------------
    def versions(self, org_id: str, prompt_id: str, *, after: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        t = prompt_versions
        query = rows_of(t, org_id).where(t.c.prompt_id == str(prompt_id), t.c.version > after)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(t.c.version).limit(clamp(limit)))]

    def version(self, org_id: str, prompt_id: str, number: int) -> dict[str, Any] | None:
        t = prompt_versions
        with self.engine.connect() as conn:
            row = conn.execute(rows_of(t, org_id).where(t.c.prompt_id == str(prompt_id), t.c.version == number)).first()
        return dict(row._mapping) if row else None
