"""Keyword search over the catalogue's own rows: SQLite FTS5 (embedded) or Postgres full-text (production).

The full-text index is derived from `rm_prompts` inside the database itself (FTS5 triggers on
SQLite, an expression GIN index on Postgres), so it changes in the same transaction as the
catalogue rows and is rebuilt with them: no separate position to track. A rebuild beside the live
tables (projections.beside) builds it once, after loading the rows: the GIN index on the new table
before the switch (Postgres), the FTS5 index from the renamed table in the switch (SQLite)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DDL, Connection, Engine, event, text

from domain.values import AUTOMATIC_LABELS
from projections import beside
from projections.catalogue.tables import prompts

_SQLITE_DDL = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS rm_prompts_fts USING fts5(
           name, tags, template, content='rm_prompts', content_rowid='rowid', tokenize='porter unicode61')""",
    """CREATE TRIGGER IF NOT EXISTS rm_prompts_fts_ai AFTER INSERT ON rm_prompts BEGIN
           INSERT INTO rm_prompts_fts(rowid, name, tags, template) VALUES (new.rowid, new.name, new.tags, new.template);
       END""",
    """CREATE TRIGGER IF NOT EXISTS rm_prompts_fts_ad AFTER DELETE ON rm_prompts BEGIN
           INSERT INTO rm_prompts_fts(rm_prompts_fts, rowid, name, tags, template)
           VALUES ('delete', old.rowid, old.name, old.tags, old.template);
       END""",
    """CREATE TRIGGER IF NOT EXISTS rm_prompts_fts_au AFTER UPDATE ON rm_prompts BEGIN
           INSERT INTO rm_prompts_fts(rm_prompts_fts, rowid, name, tags, template)
           VALUES ('delete', old.rowid, old.name, old.tags, old.template);
           INSERT INTO rm_prompts_fts(rowid, name, tags, template) VALUES (new.rowid, new.name, new.tags, new.template);
       END""",
]


def _pg_vector(alias: str = "") -> str:
    """The indexed tsvector; name weighted above tags above template ('A' > 'B' > 'C').
    Queries must use the same expression for the planner to use the GIN index."""
    a = f"{alias}." if alias else ""
    return (f"(setweight(to_tsvector('english', {a}name), 'A') || setweight(to_tsvector('english', "
            f"{a}tags::text), 'B') || setweight(to_tsvector('english', {a}template), 'C'))")


_PG_DDL = [f"CREATE INDEX IF NOT EXISTS ix_rm_prompts_fts ON rm_prompts USING gin ({_pg_vector()})"]

for statement in _SQLITE_DDL:
    event.listen(prompts, "after_create", DDL(statement).execute_if(dialect="sqlite"))
# The FTS5 index points at rm_prompts' rowids: it goes when the table goes (schema upgrades).
event.listen(prompts, "before_drop", DDL("DROP TABLE IF EXISTS rm_prompts_fts").execute_if(dialect="sqlite"))
for statement in _PG_DDL:
    event.listen(prompts, "after_create", DDL(statement).execute_if(dialect="postgresql"))


def _index_beside(conn: Connection, table: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f'CREATE INDEX "ix_rm_prompts_fts{beside.SUFFIX}" ON "{table}" USING gin ({_pg_vector()})')


def _before_switch(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":  # its triggers go with the old table
        conn.exec_driver_sql("DROP TABLE IF EXISTS rm_prompts_fts")


def _after_switch(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for statement in _SQLITE_DDL:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("INSERT INTO rm_prompts_fts(rm_prompts_fts) VALUES ('rebuild')")


beside.register(prompts.name, index=_index_beside, before_switch=_before_switch, after_switch=_after_switch)

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 32
#: Function words dropped from keyword queries: with OR semantics they match nearly every
#: prompt, which costs time and drowns the informative terms (users type sentences, not keywords).
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just like me more most my myself no nor not now
of off on once only or other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours yourself yourselves want need help please someone
something thing things give get make let also us
""".split())


@dataclass(frozen=True)
class KeywordHit:
    prompt_id: str
    score: float
    row: dict[str, Any]


_JSON_COLUMNS = ("variables", "model_config", "tags", "labels")


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """Raw SQL skips the JSON column type: SQLite hands JSON back as text. Rows match the catalogue's."""
    for column in _JSON_COLUMNS:
        if isinstance(row.get(column), str):
            row[column] = json.loads(row[column])
    row["archived"] = bool(row["archived"])
    return row


def _terms(query: str) -> list[str]:
    words = _WORD.findall(query.lower())
    informative = [w for w in dict.fromkeys(words) if w not in STOPWORDS]
    return (informative or words)[:MAX_TERMS]


class KeywordSearch:
    """Ranked full-text matches within one org (any term matches; better matches rank first)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def search(self, org_id: str, query: str, limit: int, *, tags=(), label: str | None = None,
               include_archived: bool = False) -> list[KeywordHit]:
        terms = _terms(query)
        if not terms:
            return []
        filters, params = self._filters(str(org_id), tags, label, include_archived)
        params["limit"] = limit
        if self.engine.dialect.name == "sqlite":
            # Quoted terms are literal (no FTS syntax injection); OR = any term, bm25 ranks.
            params["match"] = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
            sql = f"""SELECT p.*, -bm25(rm_prompts_fts, 10.0, 4.0, 1.0) AS score
                      FROM rm_prompts_fts JOIN rm_prompts p ON p.rowid = rm_prompts_fts.rowid
                      WHERE rm_prompts_fts MATCH :match AND {filters}
                      ORDER BY score DESC, p.prompt_id LIMIT :limit"""
        else:
            params["q"] = " | ".join(t.replace("'", "") for t in terms)
            vector = _pg_vector("p")
            sql = f"""SELECT p.*, ts_rank_cd({vector}, q) AS score
                      FROM rm_prompts p, to_tsquery('english', :q) q
                      WHERE {vector} @@ q AND {filters}
                      ORDER BY score DESC, p.prompt_id LIMIT :limit"""
        with self.engine.connect() as conn:
            rows = [_decoded(dict(r._mapping)) for r in conn.execute(text(sql), params)]
        return [KeywordHit(r["prompt_id"], float(r.pop("score")), r) for r in rows]

    @staticmethod
    def _filters(org_id: str, tags, label, include_archived) -> tuple[str, dict[str, Any]]:
        clauses = ["p.org_id = :org"]
        params: dict[str, Any] = {"org": org_id}
        if not include_archived:
            clauses.append("p.archived = :archived")
            params["archived"] = False
        for i, tag in enumerate(dict.fromkeys(tags)):
            clauses.append(f"EXISTS (SELECT 1 FROM rm_prompt_tags t WHERE t.org_id = p.org_id "
                           f"AND t.prompt_id = p.prompt_id AND t.tag = :tag{i})")
            params[f"tag{i}"] = tag
        if label and label not in AUTOMATIC_LABELS:  # every prompt has `latest`
            clauses.append("EXISTS (SELECT 1 FROM rm_prompt_labels l WHERE l.org_id = p.org_id "
                           "AND l.prompt_id = p.prompt_id AND l.label = :label)")
            params["label"] = label
        return " AND ".join(clauses), params
