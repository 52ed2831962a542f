"""Throughput of Embedder.embed_documents on real prompts, by batch size.

Embeds ``document_text(act, prompt, [])`` of the corpus's first 512 prompts (the text
the vector projection embeds per prompt, truncated to the model window) with batch sizes
16, 32 and 64, three repetitions each after one warm-up pass, and reports prompts/s as
median, min and max of the repetitions. The single-query latency (embed_query) is
measured in the same run as the reference for search requests.

Usage: python bench/embedding_throughput.py [--n 512] [--reps 3]
       [--batch-sizes 16 32 64] [--out bench/results/embedding_throughput.md]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from projections.vectors.embedder import Embedder, document_text  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "awesome-chatgpt-prompts.csv"


def load_texts(corpus: Path, n: int) -> list[str]:
    csv.field_size_limit(10**9)
    with corpus.open(newline="", encoding="utf-8") as handle:
        rows = [r for _, r in zip(range(n), csv.DictReader(handle))]
    return [document_text(r["act"], r["prompt"], []) for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    texts = load_texts(args.corpus, args.n)
    embedder = Embedder()
    started = time.perf_counter()
    embedder.warm_up()
    load_s = time.perf_counter() - started
    embedder.embed_documents(texts[:64])  # first forward passes are slower

    import torch  # imported by the embedder already; only read its settings here

    lines = [
        "# Embedding throughput: Embedder.embed_documents (all-MiniLM-L6-v2, CPU)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads. Texts: `document_text(act, prompt, [])` of the "
        f"first {len(texts)} corpus prompts (mean {statistics.fmean(map(len, texts)):.0f} chars; "
        f"the model reads at most 256 word pieces). Model load: {load_s:.1f} s. "
        f"{args.reps} repetitions per batch size after a warm-up, interleaved. Load average "
        f"at start: {os.getloadavg()[0]:.2f} (the machine is shared; compare within a run).",
        "",
        "| batch size | median prompts/s | min | max | median s per run |",
        "|---|---|---|---|---|",
    ]
    # Repetitions are interleaved across batch sizes so that background load on this
    # shared machine spreads over all of them instead of skewing one.
    durations: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
    for _ in range(args.reps):
        for batch_size in args.batch_sizes:
            t = time.perf_counter()
            vectors = embedder.embed_documents(texts, batch_size=batch_size)
            durations[batch_size].append(time.perf_counter() - t)
            assert len(vectors) == len(texts)
    for batch_size, runs in durations.items():
        rates = [len(texts) / d for d in runs]
        lines.append(
            f"| {batch_size} | {statistics.median(rates):.1f} | {min(rates):.1f} | "
            f"{max(rates):.1f} | {statistics.median(runs):.2f} |"
        )

    queries = [t.split("\n")[0] for t in texts[:100]]  # short, query-like: the titles
    latencies = []
    for q in queries:
        t = time.perf_counter()
        embedder.embed_query(q)
        latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    lines += [
        "",
        f"Single short query (`embed_query` of {len(queries)} titles): p50 "
        f"{statistics.median(latencies):.1f} ms, p99 {latencies[int(0.99 * (len(latencies) - 1))]:.1f} ms, "
        f"min {latencies[0]:.1f} ms, max {latencies[-1]:.1f} ms.",
    ]
    lines.append(f"Load average at end: {os.getloadavg()[0]:.2f}.")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
