"""Vector index on a Qdrant server, through ``qdrant_client`` (the production adapter).

One collection (default ``prompts``) holds every tenant, as Qdrant recommends for many
small tenants: ``org_id`` gets a keyword index with ``is_tenant=True`` so the server
co-locates each tenant's points, and the HNSW config is ``m=0, payload_m=16`` so the
graph is built per tenant instead of globally (every search is org-filtered, so a global
graph would only be traversed through a filter it was not built for). Tags, labels and
archived are indexed for filtering but excluded from graph building (``enable_hnsw=False``),
otherwise the server would build extra sub-graphs per tag value.

Tests run this adapter on ``QdrantClient(":memory:")``, qdrant-client's local mode: it
brute-forces in Python and ignores payload indexes (it warns; we silence that warning),
so it checks filtering semantics, not performance.

Transport failures (connection refused, timeouts, 429/502/503/504) are raised as
:class:`VectorIndexUnavailable` so an HTTP handler can answer 503 and a projection can
retry the batch without advancing its position.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from projections.vectors.index import (
    DEFAULT_DIM,
    SearchFilter,
    VectorHit,
    VectorIndexUnavailable,
    VectorPoint,
    as_float_list,
    canonical_id,
)

try:  # gRPC is optional in qdrant-client; only needed when prefer_grpc=True.
    import grpc

    _GRPC_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
except ImportError:  # pragma: no cover - grpc ships with qdrant-client today
    grpc = None  # type: ignore[assignment]
    _GRPC_TRANSIENT = set()

_TRANSIENT_HTTP = {429, 502, 503, 504}


def _is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means "the server could not be reached / is overloaded"."""
    if isinstance(exc, ResourceExhaustedResponse):
        return True
    if isinstance(exc, ResponseHandlingException):
        # Also raised for a response that fails validation: that is a bug, not an outage.
        return isinstance(exc.source, (httpx.TransportError, OSError))
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_HTTP
    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    if grpc is not None and isinstance(exc, grpc.RpcError):
        code = getattr(exc, "code", None)
        return callable(code) and code() in _GRPC_TRANSIENT
    return False


@contextmanager
def _translate_errors(action: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if _is_unavailable(exc):
            raise VectorIndexUnavailable(f"Qdrant unavailable during {action}: {exc}") from exc
        raise


def _filter(spec: SearchFilter) -> models.Filter:
    must: list[models.Condition] = [
        models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in spec.must
    ]
    must_not: list[models.Condition] = [
        models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in spec.must_not
    ]
    if spec.exclude_ids:
        must_not.append(models.HasIdCondition(has_id=list(spec.exclude_ids)))
    return models.Filter(must=must, must_not=must_not or None)


class QdrantServerIndex:
    """:class:`~projections.vectors.index.VectorIndex` over a Qdrant server (or local mode).

    ``client`` is any ``QdrantClient``; use :meth:`from_url` for a server. The client is
    thread-safe for our use (one HTTP connection pool), so no lock is taken here.
    """

    def __init__(
        self,
        client: QdrantClient,
        *,
        collection: str = "prompts",
        dim: int = DEFAULT_DIM,
        hnsw_ef: int | None = None,
    ) -> None:
        self._client = client
        self.collection = collection
        self.dim = dim
        self._hnsw_ef = hnsw_ef

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 5.0,
        collection: str = "prompts",
        dim: int = DEFAULT_DIM,
        check_compatibility: bool = True,
    ) -> QdrantServerIndex:
        """Adapter on a Qdrant server at ``url`` (e.g. ``http://qdrant:6333``).

        ``check_compatibility`` asks the server its version at construction (one request,
        a warning if unreachable); tests of an absent server turn it off.
        """
        client = QdrantClient(
            url=url,
            api_key=api_key,
            timeout=int(max(1, timeout)),
            check_compatibility=check_compatibility,
        )
        return cls(client, collection=collection, dim=dim)

    # -- lifecycle -------------------------------------------------------------------

    def ensure_ready(self) -> None:
        with _translate_errors("ensure_ready"):
            if not self._client.collection_exists(self.collection):
                self._create_collection()
            existing = self._client.get_collection(self.collection).payload_schema or {}
            with warnings.catch_warnings():
                # Local mode (tests) has no payload indexes and says so on every call.
                warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                for field, schema in self._payload_indexes().items():
                    if field not in existing:
                        self._client.create_payload_index(
                            self.collection, field, field_schema=schema, wait=True
                        )

    def _create_collection(self) -> None:
        try:
            self._client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.COSINE),
                hnsw_config=models.HnswConfigDiff(m=0, payload_m=16),
            )
        except UnexpectedResponse as exc:
            # Two workers starting together: the loser sees 409 Conflict; that is fine.
            if exc.status_code != 409:
                raise

    @staticmethod
    def _payload_indexes() -> dict[str, models.PayloadSchemaParams]:
        keyword = models.KeywordIndexType.KEYWORD
        return {
            "org_id": models.KeywordIndexParams(type=keyword, is_tenant=True),
            "tags": models.KeywordIndexParams(type=keyword, enable_hnsw=False),
            "labels": models.KeywordIndexParams(type=keyword, enable_hnsw=False),
            "archived": models.BoolIndexParams(type=models.BoolIndexType.BOOL, enable_hnsw=False),
        }

    def reset(self) -> None:
        with _translate_errors("reset"):
            self._client.delete_collection(self.collection)
        self.ensure_ready()

    def optimize(self) -> bool:
        """No-op: the server runs its optimizers in the background."""
        return False

    def maybe_optimize(self) -> bool:
        """No-op, see :meth:`optimize`."""
        return False

    def close(self) -> None:
        self._client.close()

    # -- writes ----------------------------------------------------------------------

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        structs = [
            models.PointStruct(
                id=p.prompt_id, vector=as_float_list(p.vector, self.dim), payload=dict(p.payload)
            )
            for p in points
        ]
        with _translate_errors("upsert"):
            self._client.upsert(self.collection, points=structs, wait=True)

    def delete(self, prompt_ids: Sequence[str]) -> None:
        ids = [canonical_id(i) for i in prompt_ids]
        if not ids:
            return
        with _translate_errors("delete"):
            self._client.delete(
                self.collection, points_selector=models.PointIdsList(points=ids), wait=True
            )

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
    ) -> list[VectorHit]:
        spec = SearchFilter.build(
            org_id, tags=tags, label=label, include_archived=include_archived,
            exclude_ids=exclude_ids,
        )
        if limit <= 0:
            return []
        params = models.SearchParams(hnsw_ef=self._hnsw_ef) if self._hnsw_ef else None
        with _translate_errors("search"):
            response = self._client.query_points(
                self.collection,
                query=as_float_list(vector, self.dim),
                query_filter=_filter(spec),
                limit=limit,
                search_params=params,
                with_payload=True,
            )
        return [
            VectorHit(prompt_id=str(p.id), score=float(p.score), payload=p.payload or {})
            for p in response.points
        ]

    def retrieve_vector(self, org_id: str, prompt_id: str) -> list[float] | None:
        with _translate_errors("retrieve"):
            records = self._client.retrieve(
                self.collection, [canonical_id(prompt_id)], with_payload=["org_id"],
                with_vectors=True,
            )
        for record in records:
            if (record.payload or {}).get("org_id") == org_id and record.vector is not None:
                return _dense(record.vector)
        return None

    def count(self, org_id: str | None = None) -> int:
        count_filter = None
        if org_id is not None:
            count_filter = _filter(SearchFilter.build(org_id, include_archived=True))
        with _translate_errors("count"):
            return self._client.count(self.collection, count_filter=count_filter, exact=True).count


def _dense(vector: Any) -> list[float]:
    """The unnamed dense vector of a record (qdrant-client types it as a union)."""
    if isinstance(vector, dict):
        vector = vector[""]
    return [float(x) for x in vector]
