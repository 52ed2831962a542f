"""The catalogue read model: each prompt's current state, its tags and labels, and every version.

It folds every Prompt event, so the reads it serves (lists, the by-name fetch, version history,
diffs, keyword search) all come from its own rows at one position: a label never points at a
version the read model does not hold."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any

from sqlalchemy import Connection, Integer, and_, delete, exists, insert, literal, or_, select, update

from domain.errors import Invalid
from domain.prompt import Prompt
from domain.values import AUTOMATIC_LABELS
from projections.base import Projection, json_safe
from projections.catalogue.tables import prompt_labels, prompt_tags, prompt_versions, prompts
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


def _version_row(env: Envelope, version: int) -> dict[str, Any]:
    e = env.event
    return dict(org_id=env.org_id, prompt_id=env.target_id, version=version, template=e.template,
                variables=list(e.variables), model_config=json_safe(e.model_config), tags=list(e.tags),
                message=e.message, author=env.actor, created_at=env.at, position=env.position)


class Catalogue(Projection):
    name = "catalogue"
    #: 2: holds every version (was the separate `versions` read model).
    schema_version = 2
    tables = (prompts, prompt_tags, prompt_labels, prompt_versions)

    # -- folding ----------------------------------------------------------------------------
    @singledispatchmethod
    def when(self, event: Any, env: Envelope, conn: Connection) -> None:
        pass

    @when.register
    def _(self, event: Prompt.Created, env: Envelope, conn: Connection) -> None:
        conn.execute(insert(prompts).values(
            org_id=env.org_id, prompt_id=env.target_id, name=event.name, name_key=event.name.casefold(),
            latest_version=1, template=event.template, variables=list(event.variables),
            model_config=json_safe(event.model_config), tags=list(event.tags), labels={}, archived=False,
            created_at=env.at, created_by=env.actor, updated_at=env.at, updated_by=env.actor, position=env.position,
        ))
        conn.execute(insert(prompt_versions).values(_version_row(env, 1)))
        self._set_tags(conn, env, event.tags)

    @when.register
    def _(self, event: Prompt.Revised, env: Envelope, conn: Connection) -> None:
        self._touch(conn, env, latest_version=event.version, template=event.template, variables=list(event.variables),
                    model_config=json_safe(event.model_config), tags=list(event.tags))
        conn.execute(insert(prompt_versions).values(_version_row(env, event.version)))
        self._set_tags(conn, env, event.tags)

    @when.register
    def _(self, event: Prompt.LabelMoved, env: Envelope, conn: Connection) -> None:
        conn.execute(delete(prompt_labels).where(*self._labels_of(env), prompt_labels.c.label == event.label))
        conn.execute(insert(prompt_labels).values(org_id=env.org_id, prompt_id=env.target_id, label=event.label,
                                                  version=event.to_version))
        self._touch(conn, env, labels=self._labels(conn, env))

    @when.register
    def _(self, event: Prompt.LabelRemoved, env: Envelope, conn: Connection) -> None:
        conn.execute(delete(prompt_labels).where(*self._labels_of(env), prompt_labels.c.label == event.label))
        self._touch(conn, env, labels=self._labels(conn, env))

    @when.register
    def _(self, event: Prompt.Archived, env: Envelope, conn: Connection) -> None:
        self._touch(conn, env, archived=True)

    @when.register
    def _(self, event: Prompt.Restored, env: Envelope, conn: Connection) -> None:
        self._touch(conn, env, archived=False)

    @staticmethod
    def _labels_of(env: Envelope):
        return (prompt_labels.c.org_id == env.org_id, prompt_labels.c.prompt_id == env.target_id)

    def _labels(self, conn: Connection, env: Envelope) -> dict[str, int]:
        rows = conn.execute(select(prompt_labels.c.label, prompt_labels.c.version).where(*self._labels_of(env)))
        return {r.label: r.version for r in sorted(rows)}

    @staticmethod
    def _touch(conn: Connection, env: Envelope, **values: Any) -> None:
        conn.execute(update(prompts).where(prompts.c.org_id == env.org_id, prompts.c.prompt_id == env.target_id)
                     .values(updated_at=env.at, updated_by=env.actor, position=env.position, **values))

    @staticmethod
    def _set_tags(conn: Connection, env: Envelope, tags: list[str]) -> None:
        conn.execute(delete(prompt_tags).where(prompt_tags.c.org_id == env.org_id,
                                               prompt_tags.c.prompt_id == env.target_id))
        if tags:
            conn.execute(insert(prompt_tags), [
                {"org_id": env.org_id, "tag": t, "prompt_id": env.target_id} for t in sorted(set(tags))])

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
        p, lb, pv = prompts, prompt_labels, prompt_versions
        if version is not None:
            target = literal(version, Integer)
        elif label is None or label in AUTOMATIC_LABELS:
            target = p.c.latest_version
        else:
            target = lb.c.version
        query = rows_of(p, org_id, p.c.prompt_id, p.c.name, p.c.latest_version, target.label("resolved"),
                        pv.c.template, pv.c.variables, pv.c.model_config, pv.c.tags).select_from(p)
        if target is lb.c.version:
            query = query.outerjoin(lb, and_(lb.c.org_id == p.c.org_id, lb.c.prompt_id == p.c.prompt_id,
                                             lb.c.label == label))
        query = query.outerjoin(pv, and_(pv.c.org_id == p.c.org_id, pv.c.prompt_id == p.c.prompt_id,
                                         pv.c.version == target))
        query = query.where(p.c.name_key == name.strip().casefold())
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def list(
        self, org_id: str, *, tag: str | None = None, label: str | None = None, name_prefix: str | None = None,
        archived: bool | None = False, sort: str = "name", limit: int = 50, cursor: str | None = None,
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
