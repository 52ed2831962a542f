"""Vector projection: prompts' embeddings in the vector index (Qdrant server or qdrant-edge).

The index is not transactional with SQL, so (ARCHITECTURE §4):
- points are upserted idempotently (point id = prompt id; the latest state wins),
- the tracked position is advanced (compare-and-set) only after the index accepted the batch,
- the projection never runs ahead of the catalogue, whose current rows it embeds; a replay from
  zero therefore converges to the same index as the live run.
What is embedded: name, tags and the latest version's template (adr/0005)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine

from domain.prompt import Prompt
from projections import tracking
from projections.catalogue import Catalogue
from projections.source import EventSource
from projections.vectors.embedder import Embedder, document_text
from projections.vectors.index import VectorIndex, VectorIndexUnavailable, VectorPoint

log = logging.getLogger(__name__)

#: Events that change what is embedded (the rest only change the payload).
TEXT_EVENTS = (Prompt.Created, Prompt.Revised)


class VectorProjection:
    name = "vectors"

    def __init__(self, engine: Engine, index: VectorIndex, embedder: Embedder, catalogue: Catalogue,
                 on_embed: Callable[[int, float], None] | None = None):
        self.engine = engine
        self.index = index
        self.embedder = embedder
        self.catalogue = catalogue
        self.on_embed = on_embed
        self._retry_at = 0.0
        self._backoff = 0.0

    # -- catch-up ---------------------------------------------------------------------------
    def catch_up(self, source: EventSource, batch_size: int = 256,
                 progress: Callable[[int], None] | None = None) -> int:
        if time.monotonic() < self._retry_at:
            return 0  # backing off after the index was unreachable
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
            return applied
        self._backoff = 0.0
        return applied

    def catch_up_once(self, source: EventSource, batch_size: int = 256) -> int:
        with self.engine.connect() as conn:
            current = tracking.read(conn, self.name).position
            ceiling = tracking.read(conn, self.catalogue.name).position
        if ceiling <= current:
            return 0
        batch = [e for e in source.read(current, batch_size) if e.position <= ceiling]
        if not batch:
            return 0
        touched: dict[tuple[str, str], bool] = {}
        for env in batch:
            if isinstance(env.event, Prompt.Event):
                key = (env.org_id, env.target_id)
                touched[key] = touched.get(key, False) or isinstance(env.event, TEXT_EVENTS)
        if touched:
            self._apply(touched)
        last = batch[-1]
        with self.engine.begin() as conn:
            # Losing the claim is harmless: the upserts were idempotent and the winner applied them.
            tracking.claim(conn, self.name, current, last.position, last.at)
        return len(batch)

    def _apply(self, touched: dict[tuple[str, str], bool]) -> None:
        rows = []
        for org_id, prompt_id in touched:
            row = self.catalogue.get(org_id, prompt_id)
            if row is not None:
                rows.append(row)
        vectors: dict[str, list[float]] = {}
        to_embed = []
        for row in rows:
            existing = None
            if not touched[(row["org_id"], row["prompt_id"])]:
                existing = self.index.retrieve_vector(row["org_id"], row["prompt_id"])
            if existing is None:
                to_embed.append(row)
            else:
                vectors[row["prompt_id"]] = existing
        if to_embed:
            started = time.perf_counter()
            texts = [document_text(r["name"], r["template"], r["tags"]) for r in to_embed]
            for row, vector in zip(to_embed, self.embedder.embed_documents(texts)):
                vectors[row["prompt_id"]] = vector
            if self.on_embed:
                self.on_embed(len(to_embed), time.perf_counter() - started)
        self.index.upsert([
            VectorPoint.for_prompt(
                prompt_id=r["prompt_id"], org_id=r["org_id"], vector=vectors[r["prompt_id"]], name=r["name"],
                version=r["latest_version"], tags=r["tags"], labels=sorted(r["labels"]), archived=r["archived"],
            ) for r in rows
        ])
        self.index.maybe_optimize()

    def reset(self) -> None:
        self.index.reset()
        with self.engine.begin() as conn:
            tracking.set_position(conn, self.name, 0)
