"""Vector projection: prompts' embeddings in the vector index (Qdrant server or qdrant-edge).

A deterministic fold of the event stream like any other projection (ARCHITECTURE §4):
- what is embedded comes from the events' own content (name, tags, and the template or the
  messages' text of Created/Revised); that and the payload (version, tags, labels, archived) are
  folded into this projection's own table, `rm_vector_docs`, never read from another read model;
- one writer at a time (`WriterLock`) reads a batch, embeds, upserts, then claims the position
  (compare-and-set) in the same transaction as its table rows, so a stale writer can never land
  after a newer one, and a failed upsert moves nothing;
- points are upserted idempotently (point id = prompt id), each stamped with the log position it
  reflects, so a replay from zero converges to the same index.
What is embedded: name, tags and the latest version's template (adr/0005)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, Engine, Integer, String, Table, Text, delete, insert, select
from sqlalchemy import tuple_

from domain.prompt import Prompt, searchable_text
from projections import tracking
from projections.catchup import LostClaim
from projections.db import metadata, write
from projections.events import Envelope
from projections.source import EventSource
from projections.vectors.embedder import MAX_TEMPLATE_CHARS, Embedder, document_text, embedding_space
from projections.vectors.index import VectorIndex, VectorIndexUnavailable, VectorPoint
from projections.writer_lock import WriterLock

log = logging.getLogger(__name__)

vector_docs = Table(
    "rm_vector_docs", metadata,
    Column("org_id", String(36), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("type", String(8), nullable=False),
    Column("version", Integer, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("archived", Boolean, nullable=False),
    #: The start of the latest version's text (all the embedder reads), to re-embed on a rename or
    #: when a point went missing from the index.
    Column("body", Text, nullable=False),
    #: Position of the last event folded into this document (also stamped on its point).
    Column("position", BigInteger, nullable=False),
)



def _body(event: Prompt.Created | Prompt.Revised, type_: str) -> str:
    text = searchable_text({"type": type_, "template": event.template, "messages": event.messages})
    return " ".join(text.split())[: MAX_TEMPLATE_CHARS * 2]


class VectorProjection:
    name = "vectors"
    #: 2: folds its own documents from the events (was: embedded the catalogue's rows). 3: chat
    #: prompts, renames, the text kept with each document.
    schema_version = 3
    tables = (vector_docs,)

    @classmethod
    def versioned(cls, backend: str) -> SimpleNamespace:
        """What `catchup.sync_schema` compares at start-up: the layout version plus the embedding
        space of `backend` (adr/0018), so that switching to an encoder whose vectors differ replays
        this projection and re-embeds every prompt (points are overwritten by id)."""
        return SimpleNamespace(name=cls.name, tables=cls.tables,
                               schema_version=cls.schema_version + 100 * embedding_space(backend))

    def __init__(self, engine: Engine, index: VectorIndex, embedder: Embedder,
                 on_embed: Callable[[int, float], None] | None = None):
        self.engine = engine
        self.index = index
        self.embedder = embedder
        self.on_embed = on_embed
        self.lock = WriterLock(engine, "vector-writer")
        self._retry_at = 0.0
        self._backoff = 0.0

    # -- catch-up ---------------------------------------------------------------------------
    def catch_up(self, source: EventSource, batch_size: int = 256,
                 progress: Callable[[int], None] | None = None) -> int:
        """Fold batches until the head. While the index is unreachable, back off (exponentially,
        up to a minute) without advancing; the unavailability is raised once per attempt so the
        supervisor can report it."""
        if time.monotonic() < self._retry_at:
            return 0
        applied = 0
        try:
            while n := self.catch_up_once(source, batch_size):
                applied += n
                if progress:
                    progress(n)
        except VectorIndexUnavailable:
            self._backoff = min(60.0, max(1.0, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            log.warning("vector index unavailable; retrying in %.0fs (position not advanced)", self._backoff)
            raise
        self._backoff = 0.0
        return applied

    def catch_up_once(self, source: EventSource, batch_size: int = 256) -> int:
        with self.lock.hold() as held:
            if not held:
                return 0  # another writer holds the batch
            with self.engine.connect() as conn:
                current = tracking.read(conn, self.name).position
            batch = source.read(current, batch_size)
            if not batch:
                return 0
            docs, texts = self._fold([e for e in batch if isinstance(e.event, Prompt.Event)])
            if docs:
                self.index.upsert(self._points(docs, texts))
            last = batch[-1]
            with write(self.engine) as conn:
                if not tracking.claim(conn, self.name, current, last.position, last.at):
                    raise LostClaim(self.name)  # a reset rewound it meanwhile: nothing is kept
                if docs:
                    keys = list(docs)
                    conn.execute(delete(vector_docs).where(tuple_(vector_docs.c.org_id, vector_docs.c.prompt_id)
                                                           .in_(keys)))
                    conn.execute(insert(vector_docs), list(docs.values()))
            self.index.maybe_optimize()
            return len(batch)

    def _fold(self, batch: list[Envelope]) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], str]]:
        """The touched documents after the batch, and the text to embed for those whose embedded
        text changed (Created, Revised, Renamed)."""
        keys = {(e.org_id, e.target_id) for e in batch}
        docs = self._load(keys) if keys else {}
        texts: dict[tuple[str, str], str] = {}
        for env in batch:
            key, e = (env.org_id, env.target_id), env.event
            if isinstance(e, Prompt.Created):
                docs[key] = {"org_id": env.org_id, "prompt_id": env.target_id, "name": e.name, "type": e.type,
                             "version": 1, "tags": list(e.tags), "labels": [], "archived": False,
                             "body": _body(e, e.type)}
            doc = docs.get(key)
            if doc is None:
                continue  # events of a prompt whose creation this projection never saw (cannot happen)
            if isinstance(e, Prompt.Revised):
                doc.update(version=e.version, tags=list(e.tags), body=_body(e, doc["type"]))
            elif isinstance(e, Prompt.Renamed):
                doc["name"] = e.to_name
            elif isinstance(e, Prompt.LabelMoved):
                doc["labels"] = sorted({*doc["labels"], e.label})
            elif isinstance(e, Prompt.LabelRemoved):
                doc["labels"] = sorted(set(doc["labels"]) - {e.label})
            elif isinstance(e, Prompt.Archived | Prompt.Restored):
                doc["archived"] = isinstance(e, Prompt.Archived)
            if isinstance(e, Prompt.Created | Prompt.Revised | Prompt.Renamed):
                texts[key] = document_text(doc["name"], doc["body"], doc["tags"])
            doc["position"] = env.position
        return docs, texts

    def _load(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        t = vector_docs
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(tuple_(t.c.org_id, t.c.prompt_id).in_(list(keys))))
            return {(r.org_id, r.prompt_id): dict(r._mapping) for r in rows}

    def _points(self, docs: dict[tuple[str, str], dict[str, Any]], texts: dict[tuple[str, str], str]) -> list[VectorPoint]:
        vectors: dict[tuple[str, str], Any] = {}
        for key in docs:
            if key not in texts:  # payload-only change: keep the stored vector
                vector = self.index.retrieve_vector(*key)
                if vector is not None:
                    vectors[key] = vector
                else:  # the point went missing from the index: embed the document's text again
                    texts[key] = document_text(docs[key]["name"], docs[key]["body"], docs[key]["tags"])
        pending = [k for k in docs if k not in vectors and k in texts]
        if pending:
            started = time.perf_counter()
            for key, vector in zip(pending, self.embedder.embed_documents([texts[k] for k in pending])):
                vectors[key] = vector
            if self.on_embed:
                self.on_embed(len(pending), time.perf_counter() - started)
        return [
            VectorPoint.for_prompt(prompt_id=d["prompt_id"], org_id=d["org_id"], vector=vectors[key], name=d["name"],
                                   version=d["version"], tags=d["tags"], labels=d["labels"], archived=d["archived"],
                                   position=d["position"])
            for key, d in docs.items() if key in vectors
        ]

    def reset(self) -> None:
        """Empty the index and this projection's table, rewind to zero (waits for the writer lock)."""
        with self.lock.hold(wait=True):
            self.index.reset()
            with write(self.engine) as conn:
                tracking.lock(conn, self.name)
                conn.execute(delete(vector_docs))
                tracking.rewind(conn, self.name)
