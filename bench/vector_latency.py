"""Tenant-filtered search latency of the embedded vector index (qdrant-edge adapter).

Builds N points across 1,000 orgs through ``QdrantEdgeIndex`` (the adapter the app uses,
default production settings), runs ``optimize()``, then times tenant-filtered searches
through the adapter, next to exact (brute-force) search of the same queries and the
recall@10 of the indexed search against it.

Vectors are random unit vectors (N(0,1) per dimension, normalised), not embeddings:
this measures index latency, and random high-dimensional data is a hard case for HNSW
recall, so the recall figures are a floor. Queries are fresh random unit vectors.

Two tenant-size distributions: ``uniform`` (every org the same size) and ``zipf``
(org k holds a share proportional to 1/k, so the largest org holds ~13% of the points,
as a few big customers would). Two query mixes: ``random org`` (org drawn uniformly,
what a typical request sees) and ``largest org`` (the worst case). Small tenants are
searched exactly via the payload index (under the full-scan threshold, ~6,500 vectors)
whatever the mode; only tenants above it go through their HNSW graph.

Because random vectors understate HNSW recall, a last section builds one large tenant
from real MiniLM embeddings of distinct corpus sentences (``--real-points``, default
15,000; embedding them takes about 90 s here) and queries it with held-out sentences.

Usage: python bench/vector_latency.py [--sizes 10000 100000] [--queries 1000]
       [--dists uniform zipf] [--real-points 15000] [--out bench/results/vector_latency.md]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from projections.vectors.index import VectorPoint  # noqa: E402
from projections.vectors.qdrant_edge import QdrantEdgeIndex  # noqa: E402

DIM = 384
ORGS = 1000


def org_sizes(n: int, dist: str) -> np.ndarray:
    if dist == "uniform":
        sizes = np.full(ORGS, n // ORGS)
        sizes[: n - sizes.sum()] += 1
        return sizes
    weights = 1.0 / np.arange(1, ORGS + 1)
    sizes = np.floor(weights / weights.sum() * n).astype(int)
    sizes[: n - sizes.sum()] += 1  # hand out the rounding remainder to the largest
    return sizes


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def build(index: QdrantEdgeIndex, sizes: np.ndarray, rng: np.random.Generator) -> float:
    orgs = np.repeat(np.arange(ORGS), sizes)
    rng.shuffle(orgs)  # interleave tenants as real writes would
    start = time.perf_counter()
    for lo in range(0, len(orgs), 1000):
        chunk = orgs[lo : lo + 1000]
        vectors = unit_vectors(rng, len(chunk))
        index.upsert(
            [
                VectorPoint.for_prompt(
                    prompt_id=uuid.UUID(bytes=rng.bytes(16), version=4),
                    org_id=f"org-{org}", vector=vec, name=f"p{lo + i}", version=1,
                    tags=["bench"],
                )
                for i, (org, vec) in enumerate(zip(chunk, vectors))
            ]
        )
    return time.perf_counter() - start


def timed_search(
    index: QdrantEdgeIndex, orgs: list[str], queries: np.ndarray, **kw: bool
) -> tuple[list[float], list[list[str]]]:
    latencies, results = [], []
    for org, q in zip(orgs, queries):
        t = time.perf_counter()
        hits = index.search(org, q, 10, **kw)
        latencies.append((time.perf_counter() - t) * 1000)
        results.append([h.prompt_id for h in hits])
    return latencies, results


def recall(approx: list[list[str]], exact: list[list[str]]) -> float:
    scores = [len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact) if e]
    return statistics.fmean(scores)


def row(label: str, lat: list[float], rec: str) -> str:
    q = np.percentile(lat, [50, 99])
    return f"| {label} | {len(lat)} | {q[0]:.3f} | {q[1]:.3f} | {min(lat):.3f} | {max(lat):.3f} | {rec} |"


def measure(index: QdrantEdgeIndex, mixes: dict[str, tuple[list[str], np.ndarray]]) -> list[str]:
    """Markdown rows: indexed search and exact search of the same queries, per mix."""
    lines = [
        "| queries | n | p50 ms | p99 ms | min ms | max ms | recall@10 vs exact |",
        "|---|---|---|---|---|---|---|",
    ]
    for mix, (orgs, queries) in mixes.items():
        exact_lat, exact_res = timed_search(index, orgs, queries, exact=True)
        lat, res = timed_search(index, orgs, queries)
        lines.append(row(f"{mix}, indexed (default ef)", lat, f"{recall(res, exact_res):.3f}"))
        lines.append(row(f"{mix}, exact", exact_lat, "1 (reference)"))
    return lines


def run(n: int, dist: str, n_queries: int, workdir: Path, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    sizes = org_sizes(n, dist)
    index = QdrantEdgeIndex(workdir / f"{dist}-{n}")
    index.reset()
    build_s = build(index, sizes, rng)
    t = time.perf_counter()
    index.optimize()
    optimize_s = time.perf_counter() - t
    stats = index.stats()
    mixes = {
        "random org": ([f"org-{k}" for k in rng.integers(0, ORGS, n_queries)], unit_vectors(rng, n_queries)),
        "largest org": (["org-0"] * n_queries, unit_vectors(rng, n_queries)),
    }
    lines = [
        f"### {n:,} random points, {dist} tenants (largest org {sizes.max():,} points, "
        f"smallest {sizes.min():,})",
        "",
        f"build {build_s:.1f} s ({n / build_s:,.0f} points/s, flushed per 1,000), "
        f"optimize {optimize_s:.1f} s; engine: {stats['points']:,} points, "
        f"{stats['segments']} segments",
        "",
        *measure(index, mixes),
    ]
    index.close()
    return lines + [""]


def corpus_sentences(corpus: Path) -> list[str]:
    """Distinct sentences (30-300 chars) of the prompt corpus, in file order."""
    csv.field_size_limit(10**9)
    seen: set[str] = set()
    out: list[str] = []
    with corpus.open(newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            for sentence in re.split(r"(?<=[.!?])\s+|\n+", record["prompt"]):
                sentence = " ".join(sentence.split())
                if 30 <= len(sentence) <= 300 and sentence.lower() not in seen:
                    seen.add(sentence.lower())
                    out.append(sentence)
    return out


def run_real(n: int, n_queries: int, corpus: Path, workdir: Path, seed: int) -> list[str]:
    """One large tenant of real MiniLM embeddings: how the graph does on real data."""
    from projections.vectors.embedder import Embedder

    sentences = corpus_sentences(corpus)
    rng = np.random.default_rng(seed)
    chosen = [sentences[i] for i in rng.permutation(len(sentences))[: n + n_queries]]
    t = time.perf_counter()
    vectors = np.asarray(Embedder().embed_documents(chosen), dtype=np.float32)
    embed_s = time.perf_counter() - t
    points, queries = vectors[:n], vectors[n:]
    index = QdrantEdgeIndex(workdir / "real")
    index.reset()
    for lo in range(0, n, 1000):
        index.upsert(
            [
                VectorPoint.for_prompt(
                    prompt_id=uuid.UUID(bytes=rng.bytes(16), version=4), org_id="org-big",
                    vector=v, name="s", version=1,
                )
                for v in points[lo : lo + 1000]
            ]
        )
    t = time.perf_counter()
    index.optimize()
    optimize_s = time.perf_counter() - t
    lines = [
        f"### {n:,} real MiniLM embeddings in one tenant (the large-tenant case on real data)",
        "",
        f"Points: embeddings of {n:,} distinct corpus sentences; queries: {n_queries:,} held-out "
        f"sentences. Embedding took {embed_s:.0f} s ({len(chosen) / embed_s:,.0f} sentences/s), "
        f"optimize {optimize_s:.1f} s.",
        "",
        *measure(index, {"one large org": (["org-big"] * n_queries, queries)}),
    ]
    index.close()
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dists", nargs="+", default=["uniform", "zipf"], choices=["uniform", "zipf"])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--real-points", type=int, default=15_000,
                        help="size of the real-embedding tenant (0 to skip)")
    parser.add_argument("--corpus", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "awesome-chatgpt-prompts.csv")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    args = parser.parse_args()

    header = [
        "# Vector index latency: qdrant-edge adapter, tenant-filtered top-10",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{ORGS:,} orgs; {DIM}-d **random unit vectors** (index latency only, not embedding "
        "quality) except the last section (real embeddings); queries are fresh random unit "
        "vectors; latency measured through "
        "`QdrantEdgeIndex.search` (adapter overhead included). Default settings: per-tenant "
        "HNSW (m=0, payload_m=16, ef_construct=100), full-scan threshold 10,000 KB. "
        f"Load average at start: {os.getloadavg()[0]:.2f} (shared machine).",
        "",
    ]
    print("\n".join(header), flush=True)
    report = list(header)
    with tempfile.TemporaryDirectory(prefix="pf-vectors-") as tmp:
        for n in args.sizes:
            for dist in args.dists:
                started = time.perf_counter()
                lines = run(n, dist, args.queries, Path(tmp), args.seed)
                lines.append(f"(section wall time {time.perf_counter() - started:.0f} s)\n")
                print("\n".join(lines), flush=True)
                report += lines
        if args.real_points:
            started = time.perf_counter()
            lines = run_real(args.real_points, args.queries, args.corpus, Path(tmp), args.seed)
            lines.append(f"(section wall time {time.perf_counter() - started:.0f} s)\n")
            print("\n".join(lines), flush=True)
            report += lines
    report.append(f"Load average at end: {os.getloadavg()[0]:.2f}.")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(report) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
