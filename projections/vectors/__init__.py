"""Vector index for semantic prompt search: interface, Qdrant adapters, embedder.

Import the adapters from their modules (``qdrant_server``, ``qdrant_edge``) and the
embedder from ``embedder``: each pulls in a heavy optional engine, so this package
only re-exports the engine-free interface.
"""

from projections.vectors.index import (
    VectorHit,
    VectorIndex,
    VectorIndexError,
    VectorIndexUnavailable,
    VectorPoint,
)

__all__ = [
    "VectorHit",
    "VectorIndex",
    "VectorIndexError",
    "VectorIndexUnavailable",
    "VectorPoint",
]
