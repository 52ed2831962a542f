"""Vector index in-process with ``qdrant-edge-py`` 0.9.0 (the embedded default).

Why this engine: qdrant-client's local mode is brute force in Python (1.4 s per
tenant-filtered query at 100k points); Qdrant Edge runs Qdrant's segment engine
in-process. It is beta, hence pinned and kept behind :class:`VectorIndex`.

Storage: one shard directory (e.g. ``./var/vectors``) owned by this adapter; updates go
through the engine's write-ahead log and are flushed after every batch, so a batch the
projection has recorded as applied survives a crash. Only one process may open the
directory at a time (the WAL is locked), so the embedded default runs the vector
projection and the queries in the same process.

Index layout (same as the server adapter): ``org_id`` keyword index with
``is_tenant=True``; HNSW with ``m=0, payload_m=16`` builds one graph per tenant and no
global graph. A tenant whose vectors in a segment are below ``full_scan_threshold_kb``
(default 10,000 KB, about 6,500 vectors of 384 floats) is searched exactly through the
payload index, which is as fast as a graph at that size (about 0.1-0.4 ms); larger
tenants use their graph. Measured recall@10 against exact search (see
``bench/results/vector_latency.md``): a global ``m=16`` graph searched through the
tenant filter reached 0.66 on 1,000-point tenants of random vectors, the per-tenant
graphs 0.99; on a 15,000-point tenant of real MiniLM embeddings the per-tenant graph
reaches 0.997 at the default ef (0.6 ms against 1.6 ms exact). Random vectors are the
worst case for HNSW (0.51 on a 13,000-point tenant at the default ef); raise
``hnsw_ef`` if the data ever looks like that.

Optimize policy: the engine never indexes in the background; new points land in a plain
(brute-force) segment until :meth:`optimize` runs, and ``optimize()`` **holds the GIL for
its whole duration** (measured 17.7 s for 60k points in 4 large tenants on 2 cores: no
other Python thread ran meanwhile). So the projection calls :meth:`maybe_optimize` after
each applied batch; it optimizes only when at least ``optimize_after`` points were
written since the last optimize (default 10,000), which bounds both the brute-force work
per query and how often the process stalls. A rebuild calls :meth:`optimize` once at the
end. Segments smaller than the engine's indexing threshold (default 10,000 KB) are left
plain by ``optimize()``: scanning them is cheap.

Surprises in qdrant-edge 0.9.0 this adapter works around: ``MatchValue(True)`` is sent
as the integer 1 and never matches a boolean (see :func:`_match`); ``retrieve()`` needs
``with_payload``/``with_vector`` positionally although the stubs mark them optional;
ids come back as ``uuid.UUID``; errors are bare ``Exception`` with a message; a second
``EdgeShard.load`` of an open directory fails on the WAL lock; stored vectors come back
normalised (cosine).

Thread safety: every engine call is made under one lock. The calls hold the GIL anyway,
so the lock costs no parallelism; it makes close/reset safe against in-flight queries.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from projections.vectors.index import (
    DEFAULT_DIM,
    SearchFilter,
    VectorHit,
    VectorIndexError,
    VectorPoint,
    as_float_list,
    canonical_id,
)

_CONFIG_FILE = "edge_config.json"


def _match(value: str | bool) -> qe.MatchValue:
    """MatchValue that really matches booleans.

    qdrant-edge 0.9.0 converts a Python ``bool`` passed to ``MatchValue`` into the
    integer 1/0 (bool is an int subclass), which never equals a boolean payload value:
    ``archived == True`` silently matched nothing. ``numpy.bool_`` is not an int
    subclass, so the binding keeps it a boolean. The archived-filter test guards this.
    """
    if isinstance(value, bool):
        return qe.MatchValue(np.bool_(value))  # type: ignore[arg-type]
    return qe.MatchValue(value)


def _filter(spec: SearchFilter) -> qe.Filter:
    must: list[Any] = [qe.FieldCondition(k, match=_match(v)) for k, v in spec.must]
    must_not: list[Any] = [qe.FieldCondition(k, match=_match(v)) for k, v in spec.must_not]
    if spec.exclude_ids:
        must_not.append(qe.HasIdCondition(set(spec.exclude_ids)))
    return qe.Filter(must=must, must_not=must_not or None)


class QdrantEdgeIndex:
    """:class:`~projections.vectors.index.VectorIndex` stored in a local directory."""

    def __init__(
        self,
        path: str | Path,
        *,
        dim: int = DEFAULT_DIM,
        optimize_after: int = 10_000,
        hnsw_ef: int | None = None,
        ef_construct: int = 100,
        full_scan_threshold_kb: int = 10_000,
        indexing_threshold_kb: int | None = None,
    ) -> None:
        """``indexing_threshold_kb=None`` keeps the engine default (10,000 KB).

        Tests lower both thresholds to force graphs on small data.
        """
        self.path = Path(path)
        self.dim = dim
        self.optimize_after = optimize_after
        self._hnsw_ef = hnsw_ef
        self._ef_construct = ef_construct
        self._full_scan_threshold_kb = full_scan_threshold_kb
        self._indexing_threshold_kb = indexing_threshold_kb
        self._lock = threading.RLock()
        self._shard: qe.EdgeShard | None = None
        self._pending = 0

    # -- lifecycle -------------------------------------------------------------------

    def _config(self) -> qe.EdgeConfig:
        optimizers = None
        if self._indexing_threshold_kb is not None:
            optimizers = qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_threshold_kb)
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.dim, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(
                m=0,
                ef_construct=self._ef_construct,
                full_scan_threshold=self._full_scan_threshold_kb,
                payload_m=16,
            ),
            optimizers=optimizers,
        )

    def ensure_ready(self) -> None:
        """Open the shard (creating it if the directory holds none) and its indexes."""
        with self._lock:
            if self._shard is None:
                self._shard = self._open()
                info = self._shard.info()
                # Points written before a restart and not yet indexed still count.
                self._pending = max(0, info.points_count - info.indexed_vectors_count)
            existing = self._shard.info().payload_schema
            for field, schema in self._payload_indexes().items():
                if field not in existing:
                    self._shard.update(qe.UpdateOperation.create_field_index(field, schema))

    def _open(self) -> qe.EdgeShard:
        try:
            if (self.path / _CONFIG_FILE).exists():
                # Passing the config checks it against the stored one and persists changes
                # to tunables (thresholds), not to the vector size or distance.
                return qe.EdgeShard.load(str(self.path), self._config())
            self.path.mkdir(parents=True, exist_ok=True)
            return qe.EdgeShard.create(str(self.path), self._config())
        except Exception as exc:  # the engine raises bare Exception with a message
            raise VectorIndexError(f"cannot open vector shard at {self.path}: {exc}") from exc

    @staticmethod
    def _payload_indexes() -> dict[str, Any]:
        return {
            "org_id": qe.KeywordIndexParams(is_tenant=True),
            "tags": qe.KeywordIndexParams(enable_hnsw=False),
            "labels": qe.KeywordIndexParams(enable_hnsw=False),
            "archived": qe.BoolIndexParams(enable_hnsw=False),
        }

    def _ready(self) -> qe.EdgeShard:
        if self._shard is None:
            raise VectorIndexError("vector shard is not open: call ensure_ready() first")
        return self._shard

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard = None

    def reset(self) -> None:
        """Delete the shard directory and create an empty one."""
        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard = None
            if self.path.exists():
                if any(self.path.iterdir()) and not (self.path / _CONFIG_FILE).exists():
                    raise VectorIndexError(f"{self.path} is not a vector shard; not deleting it")
                shutil.rmtree(self.path)
            self.ensure_ready()

    # -- optimize policy -------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Points written since the last optimize (upper bound of un-indexed points)."""
        return self._pending

    def stats(self) -> dict[str, int]:
        """Engine counters for metrics and the CLI (indexed counts include stale copies)."""
        with self._lock:
            info = self._ready().info()
            return {
                "points": info.points_count,
                "indexed_vectors": info.indexed_vectors_count,
                "segments": info.segments_count,
                "pending": self._pending,
            }

    def optimize(self) -> bool:
        """Build HNSW graphs for the plain segments now. Blocks, holding the GIL."""
        with self._lock:
            built = self._ready().optimize()
            self._pending = 0
            return built

    def maybe_optimize(self) -> bool:
        """Optimize if at least ``optimize_after`` points were written since the last one."""
        with self._lock:
            if self._pending < self.optimize_after:
                return False
            return self.optimize()

    # -- writes ----------------------------------------------------------------------

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        edge_points = [
            qe.Point(p.prompt_id, as_float_list(p.vector, self.dim), dict(p.payload))
            for p in points
        ]
        with self._lock:
            shard = self._ready()
            shard.update(qe.UpdateOperation.upsert_points(edge_points))
            shard.flush()
            self._pending += len(edge_points)

    def delete(self, prompt_ids: Sequence[str]) -> None:
        ids: list[Any] = [canonical_id(i) for i in prompt_ids]
        if not ids:
            return
        with self._lock:
            shard = self._ready()
            shard.update(qe.UpdateOperation.delete_points(ids))
            shard.flush()

    # -- reads -----------------------------------------------------------------------

    def search(
        self,
        org_id: str,
        vector: Sequence[float],
        limit: int,
        *,
        tags: Sequence[str] = (),
        label: str | None = None,
        include_archived: bool = False,
        exclude_ids: Sequence[str] = (),
        exact: bool = False,
    ) -> list[VectorHit]:
        """See :meth:`VectorIndex.search`; ``exact=True`` skips the graphs (for recall checks)."""
        spec = SearchFilter.build(
            org_id, tags=tags, label=label, include_archived=include_archived,
            exclude_ids=exclude_ids,
        )
        if limit <= 0:
            return []
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(as_float_list(vector, self.dim)),
            filter=_filter(spec),
            params=qe.SearchParams(hnsw_ef=self._hnsw_ef, exact=exact),
            with_payload=True,
        )
        with self._lock:
            points = self._ready().query(request)
        return [
            VectorHit(prompt_id=str(p.id), score=float(p.score), payload=p.payload or {})
            for p in points
        ]

    def retrieve_vector(self, org_id: str, prompt_id: str) -> list[float] | None:
        # retrieve() has no filter, so the tenant check is done on the payload here.
        with self._lock:
            records = self._ready().retrieve([canonical_id(prompt_id)], ["org_id"], True)
        for record in records:
            if (record.payload or {}).get("org_id") == org_id and record.vector is not None:
                vector = record.vector
                if isinstance(vector, dict):
                    vector = vector[""]
                return [float(x) for x in vector]
        return None

    def count(self, org_id: str | None = None) -> int:
        count_filter = None
        if org_id is not None:
            count_filter = _filter(SearchFilter.build(org_id, include_archived=True))
        with self._lock:
            return self._ready().count(qe.CountRequest(exact=True, filter=count_filter))
