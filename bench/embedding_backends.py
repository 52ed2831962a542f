"""Embedding backends for all-MiniLM-L6-v2 on CPU: throughput, search quality, agreement.

Compares, on the same machine in the same run:

- ``torch``: sentence-transformers on torch fp32, the current encoder: the baseline every
  ratio is taken against (paired per round);
- ``torch-int8``: the same model after ``torch.ao.quantization.quantize_dynamic`` (Linear
  layers to int8, per-tensor; bench-only);
- ``onnx``: the shipped model exported to ONNX fp32 by ``projections.vectors.embedder``
  (mean pooling and normalisation in the graph) on ONNX Runtime;
- ``onnx-int8``: that export dynamically quantised (int8 per-channel weights, uint8
  activations), as the embedder's ``onnx-int8`` backend builds and runs it: one text per
  forward pass, so a text's vector does not depend on its batch neighbours;
- ``onnx-int8-batched``: the same file run in padded batches (bench-only: what batching buys
  and what it costs in batch-dependence);
- ``onnx-int8-tensor``: per-tensor weights, batched (bench-only, not in the default set:
  shows why per-channel).

Throughput: ``Embedder.embed_documents`` of ``document_text(act, prompt, [])`` of the first
``--n`` corpus prompts (what the vector projection embeds, bench/embedding_throughput.py),
at each batch size (16 is what the projection passes; a per-text backend runs once per
round), in interleaved rounds (each round runs every backend × batch size once, the order
rotated per round) after a warm-up; reported as median and spread, and as a ratio to torch
at batch size 16 (today's projection) paired per round. Also the process's
CPU cores per wall second (a backend can look faster by taking more of a shared box) and
single short query latency (``embed_query``, interleaved per query).

Agreement: cosine between torch's vectors and each backend's, over the same documents and
the 204 labelled queries (mean / p1 / min); and each backend's own batch-dependence: the
cosine between a document embedded alone and in a batch of 16.

Quality: bench/search_quality.py's own ``load`` and ``evaluate`` per backend (a fresh
embedded container, the 1,495-prompt corpus through the commands, the projections caught up
with that backend's embedder, the labelled queries): MRR@10 and recall@10 of semantic and
hybrid search, and the difference to torch. The adoption rule of issue 14 (adr/0018): a backend
replaces torch when MRR@10 drops by less than 0.01 and throughput at least doubles.

    .venv/bin/python bench/embedding_backends.py                   # ~15 min on a busy 2-core box
    #   quicker: --n 256 --reps 3 --no-quality; subsets: --backends torch onnx-int8
    #   --batch-sizes 16 32 64; --out PATH (default bench/results/embedding_backends.md)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import CpuMeter, Stats, machine_facts, markdown_table, num, write_results  # noqa: E402
from embedding_throughput import DEFAULT_CORPUS, load_texts  # noqa: E402

from projections.vectors import embedder as emb  # noqa: E402

ALL_BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8", "onnx-int8-batched", "onnx-int8-tensor")
DEFAULT_BACKENDS = ALL_BACKENDS[:-1]


class Backend:
    """What the projection and the search service call (embed_documents / embed_query), over
    one encoder, plus how long it took to produce (export, quantise, load)."""

    def __init__(self, name: str, encoder: Any, prepare_s: float, note: str) -> None:
        self.name, self.encoder, self.prepare_s, self.note = name, encoder, prepare_s, note

    def warm_up(self) -> None:
        pass

    def embed_documents(self, texts, batch_size: int = 16) -> list[list[float]]:
        return self.encoder.encode(list(texts), batch_size).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text], batch_size=1)[0]

    def matrix(self, texts: list[str], batch_size: int) -> np.ndarray:
        return np.asarray(self.encoder.encode(list(texts), batch_size), dtype=np.float32)


def make_backend(name: str, model_path: Path, cache_dir: Path, threads: int) -> Backend:
    """Build one backend from scratch, timing it (ONNX: export + check + quantise + load, as
    on a first start with an empty cache; a later start only loads the cached file)."""
    started = time.perf_counter()
    if name in ("torch", "onnx", "onnx-int8"):
        embedder = emb.Embedder(model_path, backend=name, cache_dir=cache_dir, threads=threads)
        embedder.warm_up()
        if embedder.active_backend != name:
            raise RuntimeError(f"{name} fell back to {embedder.active_backend}: {embedder.fallback_reason}")
        note = {"torch": "sentence-transformers, fp32",
                "onnx": "ONNX Runtime, fp32 export",
                "onnx-int8": "ONNX Runtime, dynamic int8, per-channel weights"}[name]
        encoder = embedder._encoder
    elif name == "torch-int8":
        import warnings

        import torch

        encoder = emb.TorchEncoder(model_path, threads=threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
            encoder.model = torch.ao.quantization.quantize_dynamic(encoder.model, {torch.nn.Linear},
                                                                    dtype=torch.qint8)
        encoder.backend = name
        note = "sentence-transformers, torch.ao quantize_dynamic (Linear → qint8)"
    elif name == "onnx-int8-batched":
        path = emb.onnx_path(model_path, "onnx-int8", cache_dir)
        if not path.is_file():
            emb.export_onnx(model_path, path, "onnx-int8", threads=threads)
        encoder = emb.OnnxEncoder(path, model_path, threads=threads, per_text=False)
        note = "the `onnx-int8` file run in padded batches (bench-only)"
    elif name == "onnx-int8-tensor":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = emb.onnx_path(model_path, "onnx", cache_dir)
        if not fp32.is_file():
            emb.export_onnx(model_path, fp32, "onnx", threads=threads)
        target = cache_dir / "per-tensor-int8.onnx"
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=False, reduce_range=False)
        encoder = emb.OnnxEncoder(target, model_path, threads=threads, per_text=False)
        note = "ONNX Runtime, dynamic int8, per-tensor weights, batched (bench-only)"
    else:
        raise ValueError(name)
    return Backend(name, encoder, time.perf_counter() - started, note)


def cosine_stats(got: np.ndarray, want: np.ndarray) -> tuple[float, float, float]:
    cos = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    return float(cos.mean()), float(np.percentile(cos, 1)), float(cos.min())


def search_quality(backend: Backend, corpus: Path, queries_path: Path) -> dict[str, Any]:
    """bench/search_quality.py's load + evaluate on a fresh embedded container whose embedder
    (vector projection and query side alike) is this backend."""
    import search_quality as sq

    from interfaces import bootstrap
    from interfaces.seed import prompt_names, read_corpus
    from interfaces.settings import Settings

    rows = read_corpus(corpus)
    names = prompt_names(rows)
    queries = [json.loads(line) for line in queries_path.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), event_store_url=f"sqlite:///{tmp}/events.db",
                            read_model_url=f"sqlite:///{tmp}/readmodels.db", inprocess_projections=False)
        container = bootstrap.build(settings)
        try:
            # bench-only: this backend embeds for the vector projection and the query side alike
            container.vector_projection.embedder = backend
            container.search.embedder = backend
            org, ids = sq.load(container, rows, names)
            started = time.perf_counter()
            container.supervisor.catch_up()
            caught_up = time.perf_counter() - started
            report = sq.evaluate(container, org, queries, ids)
        finally:
            container.close()
    return {"catch_up_s": caught_up, **{mode: report[mode] for mode in ("semantic", "hybrid")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--queries", type=Path, default=ROOT / "bench/search_queries.jsonl")
    parser.add_argument("--n", type=int, default=512, help="corpus prompts embedded per throughput run")
    parser.add_argument("--reps", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 32])
    parser.add_argument("--backends", nargs="+", default=list(DEFAULT_BACKENDS), choices=ALL_BACKENDS)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the embedder's)")
    parser.add_argument("--no-quality", action="store_true", help="skip the MRR@10 runs (~1-3 min per backend)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/embedding_backends.md")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    backends_wanted = ["torch", *[b for b in args.backends if b != "torch"]]  # torch is the baseline

    facts = machine_facts()
    run_started = time.perf_counter()
    texts = load_texts(args.corpus, args.n)
    queries = [json.loads(line)["query"] for line in args.queries.read_text().splitlines() if line.strip()]
    titles = [t.split("\n")[0] for t in texts[:100]]
    model_path = emb.default_model_path()
    threads = args.threads or emb._default_threads()

    with tempfile.TemporaryDirectory(prefix="embedding-backends-") as cache:
        backends: dict[str, Backend] = {}
        for name in backends_wanted:
            backends[name] = make_backend(name, model_path, Path(cache), threads)
            print(f"prepared {name} in {backends[name].prepare_s:.1f} s", flush=True)
        onnx_sizes = {p.name: p.stat().st_size for p in Path(cache).glob("*.onnx")}
        for b in backends.values():
            b.matrix(texts[:64], 16)  # first forward passes are slower

        # Agreement with torch (documents at the projection's batch size; queries one by one), and
        # batch-dependence (a document alone vs. in a batch of 16).
        base_docs = backends["torch"].matrix(texts, 16)
        base_queries = np.array([backends["torch"].embed_query(q) for q in queries])
        agreement = {}
        for name, b in backends.items():
            docs = b.matrix(texts, 16)
            qs = np.array([b.embed_query(q) for q in queries])
            alone = np.concatenate([b.matrix([t], 1) for t in texts])
            agreement[name] = (cosine_stats(docs, base_docs), cosine_stats(qs, base_queries), cosine_stats(alone, docs))

        # Throughput rounds: every (backend, batch size) cell once per round, order rotated.
        cells = [(n, None if getattr(b.encoder, "per_text", False) else bs)
                 for n, b in backends.items() for bs in args.batch_sizes]
        cells = list(dict.fromkeys(cells))  # a per-text backend once
        ref = ("torch", 16 if 16 in args.batch_sizes else args.batch_sizes[0])
        rates: dict[tuple[str, int | None], list[float]] = {c: [] for c in cells}
        cores: dict[tuple[str, int | None], list[float]] = {c: [] for c in cells}
        loads: list[float] = []
        names = list(backends)
        for r in range(args.reps):
            loads.append(os.getloadavg()[0])
            for name, bs in cells[r % len(cells):] + cells[: r % len(cells)]:
                with CpuMeter() as meter:
                    out = backends[name].encoder.encode(texts, bs or 1)
                assert len(out) == len(texts)
                rates[(name, bs)].append(len(texts) / meter.wall)
                cores[(name, bs)].append(meter.client_cores)
            print(f"round {r + 1}/{args.reps}: " + ", ".join(
                f"{n}@{bs or 'text'} {rates[(n, bs)][-1]:.0f}/s" for n, bs in cells), flush=True)

        # Single query latency, interleaved per query.
        latencies: dict[str, list[float]] = {n: [] for n in names}
        for q in titles:
            for name in names:
                started = time.perf_counter()
                backends[name].embed_query(q)
                latencies[name].append((time.perf_counter() - started) * 1000)

        quality: dict[str, dict[str, Any]] = {}
        if not args.no_quality:
            for name in names:
                try:
                    quality[name] = search_quality(backends[name], args.corpus, args.queries)
                except Exception as exc:  # reported; the throughput figures above still count
                    print(f"quality {name} failed: {type(exc).__name__}: {exc}", flush=True)
                    if name == "torch":
                        break
                    continue
                print(f"quality {name}: semantic MRR@10 {quality[name]['semantic']['mrr@10']:.3f}, "
                      f"hybrid {quality[name]['hybrid']['mrr@10']:.3f} "
                      f"(catch-up {quality[name]['catch_up_s']:.0f} s)", flush=True)

    load_end = os.getloadavg()
    mean_chars = statistics.fmean(map(len, texts))
    facts += [
        f"torch {version('torch')} ({threads} intra-op threads), sentence-transformers {version('sentence-transformers')}, "
        f"transformers {version('transformers')}, tokenizers {version('tokenizers')}, "
        f"onnxruntime {version('onnxruntime')}, onnx {version('onnx')}",
        f"texts: `document_text(act, prompt, [])` of the first {len(texts)} corpus prompts (mean {mean_chars:.0f} chars; "
        f"the model reads at most 256 word pieces); {args.reps} interleaved rounds of {len(cells)} cells (backend × batch "
        f"size {args.batch_sizes}; order rotated per round) after a warm-up; load average (1 min) at each round's "
        f"start: {', '.join(f'{x:.1f}' for x in loads)}; at the end {' / '.join(f'{x:.2f}' for x in load_end)}. "
        f"Whole run: {(time.perf_counter() - run_started) / 60:.1f} min.",
    ]
    lines = ["# Embedding backends: all-MiniLM-L6-v2 on CPU, torch vs. int8 vs. ONNX Runtime", "",
             *[f"- {f}" for f in facts], ""]

    lines += ["## Backends", "", markdown_table(
        ["backend", "what", "prepared in (s)", "artefact"],
        [[f"`{n}`", b.note, f"{b.prepare_s:.1f}",
          ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in onnx_sizes.items()
                    if (n == "onnx" and not k.endswith("int8.onnx"))
                    or (n in ("onnx-int8", "onnx-int8-batched") and k.endswith("-int8.onnx")
                        and not k.startswith("per-tensor"))
                    or (n == "onnx-int8-tensor" and k.startswith("per-tensor"))) or "–"]
         for n, b in backends.items()]),
        "", "`prepared in`: from nothing to ready, as on a first start with an empty cache (ONNX: export from the "
        "shipped weights, probe check against torch, quantisation, session load; torch: model load). A later start "
        "of an ONNX backend loads the cached file only.", ""]

    lines += ["## Throughput (texts/s)", ""]
    rows = []
    for name, bs in cells:
        st = Stats.of(rates[(name, bs)])
        ratio = Stats.of([a / b for a, b in zip(rates[(name, bs)], rates[ref])])
        rows.append([f"`{name}`", bs or "1 (per text, any batch size)", *st.cells(), f"{st.spread_pct:.0f}%",
                     f"{ratio.median:.2f}× ({ratio.min:.2f}–{ratio.max:.2f})",
                     f"{statistics.median(cores[(name, bs)]):.2f}"])
    lines += [markdown_table(["backend", "batch size", *["median", "p10", "p90", "min", "max"], "p90−p10 / median",
                              f"÷ torch at batch {ref[1]}, same round: median (min–max)", "process CPU (cores)"], rows), "",
              f"`÷ torch`: this cell's rate over torch's at batch size {ref[1]} (what the vector projection runs today) "
              "in the same round, then summarised. `process CPU`: CPU seconds of the benchmark process per wall second "
              "during the run (2 = both cores).", ""]

    lines += ["## Single short query (`embed_query`, 100 titles, interleaved per query)", "", markdown_table(
        ["backend", "p50 ms", "p90 ms", "p99 ms", "min ms", "max ms"],
        [[f"`{n}`", *(f"{v:.1f}" for v in (statistics.median(ls), np.percentile(ls, 90), np.percentile(ls, 99),
                                            min(ls), max(ls)))] for n, ls in latencies.items()]), ""]

    lines += ["## Agreement (cosine of the vectors)", "", markdown_table(
        ["backend", f"vs torch, documents ({len(texts)}, batch 16): mean", "p1", "min",
         f"vs torch, queries ({len(queries)}): mean", "p1", "min",
         "same backend, document alone vs in a batch of 16: mean", "p1", "min"],
        [[f"`{n}`", *(f"{v:.4f}" for v in (*d, *q, *a))] for n, (d, q, a) in agreement.items()]), "",
        "The last three columns show batch-dependence: 1.0000 means a text's vector does not depend on the texts "
        "it is batched with (replays rebuild the same vectors; a query embeds like the same text as a document).", ""]

    if "torch" in quality:
        base = quality["torch"]
        rows = []
        for name, q in quality.items():
            rows.append([f"`{name}`", *(f"{q[m][k]:.3f}" for m in ("semantic", "hybrid") for k in ("mrr@10", "recall@10")),
                         f"{q['semantic']['mrr@10'] - base['semantic']['mrr@10']:+.3f}",
                         f"{q['hybrid']['mrr@10'] - base['hybrid']['mrr@10']:+.3f}",
                         f"{q['semantic']['mrr_test'] - base['semantic']['mrr_test']:+.3f}",
                         f"{q['catch_up_s']:.0f}"])
        lines += ["## Search quality (bench/search_quality.py's load + evaluate, one fresh container per backend)", "",
                  markdown_table(["backend", "semantic MRR@10", "semantic recall@10", "hybrid MRR@10", "hybrid recall@10",
                                  "Δ semantic MRR@10", "Δ hybrid MRR@10", "Δ semantic MRR@10 held-out half",
                                  "catch-up s (all projections)"], rows), "",
                  "Δ: minus torch's figure in this run. 1,495 prompts, 204 labelled queries, top 10. The queries are few: "
                  "one query moving from rank 1 to rank 2 changes MRR@10 by 0.0025 (0.5 / 204), so differences of a few "
                  "thousandths are a handful of queries swapping neighbouring ranks, not evidence of a better encoder.", ""]

        lines += ["## Against the adoption rule (MRR@10 drop < 0.01 and throughput ≥ 2× torch)", ""]
        rows = []
        for name in [n for n in names[1:] if n in quality]:
            own = [c for c in cells if c[0] == name and c[1] in (None, ref[1])]
            ratio = Stats.of([a / b for a, b in zip(rates[own[0]], rates[ref])]).median if own else float("nan")
            drop = max(base[m]["mrr@10"] - quality[name][m]["mrr@10"] for m in ("semantic", "hybrid"))
            rows.append([f"`{name}`", f"{ratio:.2f}×", f"{drop:+.3f}",
                         "passes" if ratio >= 2 and drop < 0.01 else "fails"])
        lines += [markdown_table(["backend", f"throughput ÷ torch (batch {ref[1]}, median; per-text backends per text)",
                                  "worst MRR@10 drop (semantic, hybrid)", "rule"], rows), ""]

    text = "\n".join(lines) + "\n"
    print(text)
    write_results(args.out, text)


if __name__ == "__main__":
    main()
