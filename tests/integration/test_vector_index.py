"""Contract tests for both vector-index adapters, plus the edge engine's own risks.

Vectors here are seeded random numpy vectors (explicit fakes): these tests check the
adapters' filtering, idempotence and persistence, not embedding quality.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from projections.vectors.index import (
    VectorIndex,
    VectorIndexError,
    VectorIndexUnavailable,
    VectorPoint,
)
from projections.vectors.qdrant_edge import QdrantEdgeIndex
from projections.vectors.qdrant_server import QdrantServerIndex

DIM = 16


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def point(org: str, vector: np.ndarray, *, pid: str | None = None, **payload: object) -> VectorPoint:
    fields: dict = {"name": "p", "version": 1, "tags": [], "labels": [], "archived": False}
    fields.update(payload)
    return VectorPoint.for_prompt(
        prompt_id=pid or str(uuid.uuid4()), org_id=org, vector=vector, **fields
    )


@pytest.fixture(params=["server", "edge"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    idx: VectorIndex
    if request.param == "server":
        idx = QdrantServerIndex(QdrantClient(":memory:"), dim=DIM)
    else:
        idx = QdrantEdgeIndex(tmp_path / "vectors", dim=DIM)
    idx.ensure_ready()
    yield idx
    idx.close()


def test_adapters_satisfy_protocol(index: VectorIndex) -> None:
    assert isinstance(index, VectorIndex)
    index.ensure_ready()  # idempotent
    assert index.count() == 0


def test_tenants_with_identical_content_never_see_each_other(index: VectorIndex) -> None:
    vectors = unit(np.random.default_rng(1), 5)
    a_ids = [str(uuid.uuid4()) for _ in vectors]
    b_ids = [str(uuid.uuid4()) for _ in vectors]
    index.upsert([point("org-a", v, pid=i, name="same") for v, i in zip(vectors, a_ids)])
    index.upsert([point("org-b", v, pid=i, name="same") for v, i in zip(vectors, b_ids)])

    hits_a = index.search("org-a", vectors[0], 10, include_archived=True)
    hits_b = index.search("org-b", vectors[0], 10, include_archived=True)
    assert {h.prompt_id for h in hits_a} == set(a_ids)
    assert {h.prompt_id for h in hits_b} == set(b_ids)
    assert all(h.payload["org_id"] == "org-a" for h in hits_a)
    assert hits_a[0].prompt_id == a_ids[0] and hits_a[0].score == pytest.approx(1.0, abs=1e-5)
    assert index.search("org-c", vectors[0], 10) == []
    assert index.count("org-a") == 5 and index.count("org-b") == 5 and index.count() == 10
    assert index.retrieve_vector("org-b", a_ids[0]) is None
    assert index.retrieve_vector("org-a", a_ids[0]) == pytest.approx(vectors[0].tolist(), abs=1e-5)


def test_upsert_same_id_replaces_vector_and_payload(index: VectorIndex) -> None:
    old, new = unit(np.random.default_rng(2), 2)
    pid = str(uuid.uuid4())
    index.upsert([point("org-a", old, pid=pid, version=1, tags=["draft"])])
    index.upsert([point("org-a", new, pid=pid, version=2, tags=["final"])])
    index.upsert([point("org-a", new, pid=pid, version=2, tags=["final"])])  # replayed batch

    assert index.count() == 1
    assert index.retrieve_vector("org-a", pid) == pytest.approx(new.tolist(), abs=1e-5)
    (hit,) = index.search("org-a", new, 10)
    assert hit.payload["version"] == 2 and hit.payload["tags"] == ["final"]
    assert index.search("org-a", new, 10, tags=["draft"]) == []


def test_delete_removes_points_and_ignores_unknown_ids(index: VectorIndex) -> None:
    vectors = unit(np.random.default_rng(3), 3)
    ids = [str(uuid.uuid4()) for _ in vectors]
    index.upsert([point("org-a", v, pid=i) for v, i in zip(vectors, ids)])
    index.delete([ids[0], str(uuid.uuid4())])
    assert index.count() == 2
    assert ids[0] not in {h.prompt_id for h in index.search("org-a", vectors[0], 10)}
    assert index.retrieve_vector("org-a", ids[0]) is None


def test_archived_excluded_unless_asked(index: VectorIndex) -> None:
    live, archived = unit(np.random.default_rng(4), 2)
    live_id, archived_id = str(uuid.uuid4()), str(uuid.uuid4())
    index.upsert([point("org-a", live, pid=live_id), point("org-a", archived, pid=archived_id, archived=True)])
    assert [h.prompt_id for h in index.search("org-a", archived, 10)] == [live_id]
    with_archived = index.search("org-a", archived, 10, include_archived=True)
    assert [h.prompt_id for h in with_archived] == [archived_id, live_id]


def test_tag_filter_requires_all_tags_and_label_filter(index: VectorIndex) -> None:
    vectors = unit(np.random.default_rng(5), 3)
    both, only_sql, none = (str(uuid.uuid4()) for _ in range(3))
    index.upsert(
        [
            point("org-a", vectors[0], pid=both, tags=["sql", "review"], labels=["production"]),
            point("org-a", vectors[1], pid=only_sql, tags=["sql"], labels=["staging"]),
            point("org-a", vectors[2], pid=none),
        ]
    )
    q = vectors[2]
    assert {h.prompt_id for h in index.search("org-a", q, 10, tags=["sql"])} == {both, only_sql}
    assert [h.prompt_id for h in index.search("org-a", q, 10, tags=["sql", "review"])] == [both]
    assert index.search("org-a", q, 10, tags=["sql", "missing"]) == []
    assert [h.prompt_id for h in index.search("org-a", q, 10, label="staging")] == [only_sql]
    assert [h.prompt_id for h in index.search("org-a", q, 10, tags=["sql"], label="production")] == [both]


def test_exclude_ids_and_limit(index: VectorIndex) -> None:
    vectors = unit(np.random.default_rng(6), 4)
    ids = [str(uuid.uuid4()) for _ in vectors]
    index.upsert([point("org-a", v, pid=i) for v, i in zip(vectors, ids)])
    hits = index.search("org-a", vectors[0], 10, exclude_ids=[ids[0], ids[1].upper()])
    assert {h.prompt_id for h in hits} == {ids[2], ids[3]}
    assert len(index.search("org-a", vectors[0], 2)) == 2
    scores = [h.score for h in index.search("org-a", vectors[0], 10)]
    assert scores == sorted(scores, reverse=True)


def test_reset_drops_everything_and_stays_usable(index: VectorIndex) -> None:
    vectors = unit(np.random.default_rng(7), 3)
    index.upsert([point("org-a", v) for v in vectors])
    index.reset()
    assert index.count() == 0
    assert index.search("org-a", vectors[0], 10) == []
    index.upsert([point("org-a", vectors[0], tags=["x"])])
    assert index.count() == 1 and len(index.search("org-a", vectors[0], 10, tags=["x"])) == 1


def test_search_demands_org_and_right_dimension(index: VectorIndex) -> None:
    with pytest.raises(ValueError):
        index.search("", [0.0] * DIM, 10)
    with pytest.raises(ValueError):
        index.search("org-a", [0.0] * (DIM + 1), 10)
    with pytest.raises(ValueError):
        index.upsert([point("org-a", np.ones(DIM + 1, dtype=np.float32))])
    with pytest.raises(ValueError):
        VectorPoint(prompt_id="not-a-uuid", org_id="org-a", vector=[0.0] * DIM)
    with pytest.raises(ValueError):
        VectorPoint(prompt_id=str(uuid.uuid4()), org_id="org-a", vector=[0.0] * DIM, payload={"org_id": "org-b"})


# -- server adapter: outages --------------------------------------------------------


def test_server_unreachable_raises_vector_index_unavailable() -> None:
    with socket.socket() as s:  # a free loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    idx = QdrantServerIndex.from_url(f"http://127.0.0.1:{port}", timeout=1, check_compatibility=False)
    with pytest.raises(VectorIndexUnavailable):
        idx.ensure_ready()
    with pytest.raises(VectorIndexUnavailable):
        idx.search("org-a", [0.0] * 384, 5)
    idx.close()


# -- edge adapter: persistence, optimize policy, recall ------------------------------


def test_edge_points_survive_reopen(tmp_path: Path) -> None:
    vectors = unit(np.random.default_rng(8), 20)
    ids = [str(uuid.uuid4()) for _ in vectors]
    first = QdrantEdgeIndex(tmp_path / "vectors", dim=DIM)
    first.ensure_ready()
    first.upsert([point("org-a", v, pid=i, tags=["t"]) for v, i in zip(vectors, ids)])
    first.delete([ids[-1]])
    first.close()

    reopened = QdrantEdgeIndex(tmp_path / "vectors", dim=DIM)
    reopened.ensure_ready()
    try:
        assert reopened.count("org-a") == 19
        hits = reopened.search("org-a", vectors[3], 1, tags=["t"])
        assert hits[0].prompt_id == ids[3] and hits[0].payload["tags"] == ["t"]
        assert reopened.stats()["pending"] == 19  # not indexed yet, still owed an optimize
    finally:
        reopened.close()


def test_edge_refuses_to_reset_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("not a shard")
    idx = QdrantEdgeIndex(tmp_path, dim=DIM)
    with pytest.raises(VectorIndexError):
        idx.reset()
    assert (tmp_path / "precious.txt").exists()


def test_edge_maybe_optimize_waits_for_enough_writes(tmp_path: Path) -> None:
    idx = QdrantEdgeIndex(
        tmp_path / "v", dim=DIM, optimize_after=50, full_scan_threshold_kb=1, indexing_threshold_kb=1
    )
    idx.ensure_ready()
    vectors = unit(np.random.default_rng(9), 60)
    idx.upsert([point("org-a", v) for v in vectors[:40]])
    assert idx.maybe_optimize() is False and idx.stats()["indexed_vectors"] == 0
    idx.upsert([point("org-a", v) for v in vectors[40:]])
    assert idx.maybe_optimize() is True
    assert idx.stats()["pending"] == 0 and idx.stats()["indexed_vectors"] == 60
    idx.close()


def test_edge_hnsw_recall_against_exact_search(tmp_path: Path) -> None:
    """Per-tenant graphs must find what exact search finds (recall@10 >= 0.95).

    Thresholds are lowered so that 1,000-point tenants really are searched through a
    graph (by default they would be scanned exactly, making this test vacuous).
    """
    dim, orgs, per_org = 384, 5, 1000
    rng = np.random.default_rng(10)
    vectors = unit(rng, orgs * per_org, dim)
    idx = QdrantEdgeIndex(tmp_path / "v", dim=dim, full_scan_threshold_kb=10, indexing_threshold_kb=10)
    idx.ensure_ready()
    org_of = [f"org-{i % orgs}" for i in range(len(vectors))]
    ids = [str(uuid.uuid4()) for _ in vectors]
    org_by_id = dict(zip(ids, org_of))
    for start in range(0, len(vectors), 500):
        idx.upsert([point(org_of[i], vectors[i], pid=ids[i]) for i in range(start, start + 500)])
    assert idx.optimize() is True
    assert idx.stats()["indexed_vectors"] == len(vectors)

    queries = unit(rng, 100, dim)
    recalls = []
    for n, q in enumerate(queries):
        org = f"org-{n % orgs}"
        exact = [h.prompt_id for h in idx.search(org, q, 10, exact=True)]
        # the reference itself, checked against numpy brute force
        members = [i for i in range(len(vectors)) if org_of[i] == org]
        top = np.argsort(-(vectors[members] @ q))[:10]
        assert set(exact) == {ids[members[i]] for i in top}
        approx = [h.prompt_id for h in idx.search(org, q, 10)]
        assert all(org_by_id[p] == org for p in approx)
        recalls.append(len(set(approx) & set(exact)) / 10)
    assert float(np.mean(recalls)) >= 0.95
    idx.close()
