"""Embedding throughput of the vector projection (prompts/s) per embedding backend, each beside its
raw embedder ceiling, in one run.

For each backend (default: torch, the encoder before adr/0018, and onnx-int8, the default since),
loads N corpus prompts through the commands into a store of its own (embedded backend) and catches
the projections up; then, in every round and in a rotated order, rebuilds that backend's `vectors`
projection (embedding + qdrant-edge upserts + tracking) and times `Embedder.embed_documents` alone
on the same texts (the ceiling). Reported: median and spread per backend, and each backend's
rebuild rate over torch's in the same round (issue 14 §5: adopt an encoder whose projection
throughput at least doubles).

    .venv/bin/python bench/vector_projection_throughput.py [--prompts 600] [--repeat 3]
                                                          [--backends torch onnx-int8]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import Stats, machine_facts, markdown_table, num, write_results  # noqa: E402
from application import Principal  # noqa: E402
from interfaces.bootstrap import build  # noqa: E402
from interfaces.seed import prompt_names, read_corpus  # noqa: E402
from interfaces.settings import Settings  # noqa: E402
from projections.vectors.embedder import document_text  # noqa: E402

BACKENDS = ("torch", "onnx-int8")


def _loaded(backend: str, tmp: str, rows: list[dict], names: list[str]):
    """A container on `backend` with the prompts created and every projection caught up."""
    c = build(Settings(data_dir=Path(tmp), event_store_url=f"sqlite:///{tmp}/e.db",
                       read_model_url=f"sqlite:///{tmp}/r.db", inprocess_projections=False,
                       embedding_backend=backend))
    user, _ = c.app.register_user("vb@example.com", "benchmark-password-1", "vb", "b")
    owner = Principal.user(user)
    org = c.app.create_organisation(owner, "vector bench", "b").id
    c.app.update_organisation(owner, org, "b", plan="PRO")
    for row, name in zip(rows, names):
        c.app.create_prompt(owner, org, name=name, template=row["prompt"], tags=[row["type"].lower()],
                            template_format="plain", request_id="b")  # imported text: braces are literal
    for name in c.projections:
        c.supervisor.catch_up(name)
    return c, org


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS),
                        choices=["torch", "onnx", "onnx-int8"], help="the first is the reference of the ratios")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/data/awesome-chatgpt-prompts.csv")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/vector_projection_throughput.md")
    args = parser.parse_args()
    facts = machine_facts()
    rows = read_corpus(args.corpus)[: args.prompts]
    names = prompt_names(rows)
    texts = [document_text(n, r["prompt"], [r["type"].lower()]) for r, n in zip(rows, names)]
    rebuilds: dict[str, list[float]] = {b: [] for b in args.backends}
    ceilings: dict[str, list[float]] = {b: [] for b in args.backends}
    with ExitStack() as stack:
        loaded = {}
        for backend in args.backends:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            c, org = _loaded(backend, tmp, rows, names)
            stack.callback(c.close)
            c.vector_projection.embedder.embed_documents(texts[:32])  # loaded and warm
            loaded[backend] = (c, org)
        for round_ in range(args.repeat):
            order = args.backends[round_ % len(args.backends):] + args.backends[:round_ % len(args.backends)]
            for backend in order:
                c, org = loaded[backend]
                started = time.perf_counter()
                c.supervisor.rebuild("vectors")
                rebuilds[backend].append(len(rows) / (time.perf_counter() - started))
                started = time.perf_counter()
                c.vector_projection.embedder.embed_documents(texts)
                ceilings[backend].append(len(rows) / (time.perf_counter() - started))
                assert c.vector_projection.index.count(str(org)) == len(rows)
            print(f"round {round_ + 1}/{args.repeat}: "
                  + ", ".join(f"{b} {rebuilds[b][-1]:.1f}/s (ceiling {ceilings[b][-1]:.1f})" for b in order))
    reference = args.backends[0]
    table = []
    for backend in args.backends:
        r, e = Stats.of(rebuilds[backend]), Stats.of(ceilings[backend])
        paired = Stats.of([x / y for x, y in zip(rebuilds[backend], rebuilds[reference])])
        table.append([f"`{backend}`", num(r.median), f"{num(r.min)}–{num(r.max)}", num(e.median),
                      f"{num(e.min)}–{num(e.max)}", f"{r.median / e.median:.0%}",
                      f"**{paired.median:.2f}×** ({paired.min:.2f}–{paired.max:.2f})"])
    text = "\n".join([
        "# Vector projection throughput per embedding backend (embedded: MiniLM on CPU + qdrant-edge)",
        "",
        *[f"- {f}" for f in facts],
        f"- {len(rows)} corpus prompts; {args.repeat} rounds, each rebuilding every backend's `vectors` projection "
        "(reset, read the log, read catalogue rows, embed in batches of 16, upsert, claim the position) in a "
        "rotated order, each followed by its ceiling: `embed_documents` alone on the same texts. Each backend "
        "has its own store, loaded through the commands before the rounds.",
        "",
        markdown_table(["backend", "rebuild prompts/s (median)", "min–max", "ceiling prompts/s (median)", "min–max",
                        "rebuild ÷ ceiling", f"rebuild ÷ `{reference}` in the same round: median (min–max)"],
                       table),
    ]) + "\n"
    write_results(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
