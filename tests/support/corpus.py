"""The shared public-domain corpus of 1,495 prompts (../shared/data), parsed once."""
from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

CANDIDATES = [
    Path(os.environ.get("PROMPTFORGE_CORPUS", "")),
    Path(__file__).resolve().parents[3] / "shared/data/awesome-chatgpt-prompts.csv",
    Path(__file__).resolve().parents[2] / "../shared/data/awesome-chatgpt-prompts.csv",
]


def corpus_path() -> Path:
    for path in CANDIDATES:
        if str(path) and path.is_file():
            return path
    raise FileNotFoundError("awesome-chatgpt-prompts.csv not found; set PROMPTFORGE_CORPUS")


@functools.lru_cache(maxsize=1)
def load_corpus() -> list[dict[str, str]]:
    csv.field_size_limit(10**9)
    with corpus_path().open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
