"""Embedding throughput of the vector projection (prompts/s), beside the raw embedder ceiling.

Loads N corpus prompts through the commands (embedded backend), catches the SQL projections up, then
rebuilds the `vectors` projection R times (embedding + qdrant-edge upserts + tracking) and, in the
same run, times `Embedder.embed_documents` alone on the same texts (the ceiling).

    .venv/bin/python bench/vector_projection_throughput.py [--prompts 600] [--repeat 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from application import Principal  # noqa: E402
from interfaces.bootstrap import build  # noqa: E402
from interfaces.seed import prompt_names, read_corpus  # noqa: E402
from interfaces.settings import Settings  # noqa: E402
from projections.vectors.embedder import document_text  # noqa: E402


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/data/awesome-chatgpt-prompts.csv")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/vector_projection_throughput.md")
    args = parser.parse_args()
    rows = read_corpus(args.corpus)[: args.prompts]
    names = prompt_names(rows)
    with tempfile.TemporaryDirectory() as tmp:
        c = build(Settings(data_dir=Path(tmp), event_store_url=f"sqlite:///{tmp}/e.db",
                           read_model_url=f"sqlite:///{tmp}/r.db", inprocess_projections=False))
        try:
            user, _ = c.app.register_user("vb@example.com", "benchmark-password-1", "vb", "b")
            owner = Principal.user(user)
            org = c.app.create_organisation(owner, "vector bench", "b").id
            c.app.update_organisation(owner, org, "b", plan="PRO")
            for row, name in zip(rows, names):
                c.app.create_prompt(owner, org, name=name, template=row["prompt"], tags=[row["type"].lower()],
                                    template_format="plain", request_id="b")  # imported text: braces are literal
            for name in c.projections:
                c.supervisor.catch_up(name)
            all_texts = [document_text(n, r["prompt"], [r["type"].lower()]) for r, n in zip(rows, names)]
            c.vector_projection.embedder.embed_documents(all_texts[:32])  # load the model, warm up
            projection, ceiling = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                c.supervisor.rebuild("vectors")
                projection.append(len(rows) / (time.perf_counter() - started))
                started = time.perf_counter()
                c.vector_projection.embedder.embed_documents(all_texts)
                ceiling.append(len(rows) / (time.perf_counter() - started))
            assert c.vector_projection.index.count(str(org)) == len(rows)
        finally:
            c.close()
    text = "\n".join([
        "# Vector projection throughput (embedded: MiniLM on CPU + qdrant-edge)",
        "",
        f"{len(rows)} corpus prompts, {args.repeat} rebuilds of `vectors` (reset, read log, read catalogue rows, "
        "embed in batches of 16, upsert, claim position); ceiling = `embed_documents` alone on the same texts, "
        "alternating with the rebuilds in the same run. 2-core machine, shared.",
        "",
        "| what | median prompts/s | min | max |",
        "|---|---|---|---|",
        f"| vector projection rebuild | {spread(projection)} |",
        f"| ceiling: embed_documents only | {spread(ceiling)} |",
        "",
        f"Projection / ceiling (medians): {statistics.median(projection) / statistics.median(ceiling):.0%}.",
    ]) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
