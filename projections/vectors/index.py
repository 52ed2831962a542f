"""The project's own vector-index interface.

Qdrant is reached through two very different engines (the qdrant-client talking to a
server in production, and the in-process ``qdrant-edge-py`` beta for the embedded
default), so callers depend on this small interface instead of either library. Both
adapters keep the same guarantees:

* one index holds every tenant; each point's payload carries ``org_id`` and **every**
  search and vector read is restricted to one org (a must-filter, never a post-filter);
* the point id is the prompt id, so an upsert is idempotent and the latest write wins,
  which is what lets the vector projection replay batches safely (ARCHITECTURE §4);
* ``tags`` in a search means the point must carry **all** the given tags.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: Dimension of the embeddings the project stores (all-MiniLM-L6-v2).
DEFAULT_DIM = 384

#: Payload keys every point carries; the adapters index org_id, tags, labels, archived.
#: `position` is the log position the point reflects (the vector projection stamps it).
PAYLOAD_KEYS = ("org_id", "prompt_id", "name", "version", "tags", "labels", "archived", "position")


class VectorIndexError(Exception):
    """Base class for errors raised by a vector index adapter."""


class VectorIndexUnavailable(VectorIndexError):
    """The index cannot be reached right now (connection refused, timeout, 502-504).

    Transient by nature: an HTTP handler answers 503, a projection retries the batch
    without advancing its position.
    """


def canonical_id(prompt_id: str | uuid.UUID) -> str:
    """Return the canonical lowercase UUID string; Qdrant point ids must be UUIDs."""
    try:
        return str(uuid.UUID(str(prompt_id)))
    except ValueError as exc:
        raise ValueError(f"prompt id is not a UUID: {prompt_id!r}") from exc


def as_float_list(vector: Sequence[float] | Any, dim: int) -> list[float]:
    """Copy a vector (list, tuple or numpy array) into a list of floats of length ``dim``."""
    values = vector.tolist() if hasattr(vector, "tolist") else [float(x) for x in vector]
    if len(values) != dim:
        raise ValueError(f"vector has {len(values)} dimensions, index expects {dim}")
    return values


@dataclass(frozen=True)
class VectorPoint:
    """One prompt's vector and the payload searches filter on.

    ``payload`` should hold at least the keys in :data:`PAYLOAD_KEYS`; ``org_id`` and
    ``prompt_id`` are always (re)written from the fields so they cannot disagree.
    Build it with :meth:`for_prompt` unless you have a reason not to.
    """

    prompt_id: str
    org_id: str
    vector: Sequence[float]
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.org_id:
            raise ValueError("org_id is required")
        pid = canonical_id(self.prompt_id)
        given_org = self.payload.get("org_id", self.org_id)
        if given_org != self.org_id:
            raise ValueError(f"payload org_id {given_org!r} differs from {self.org_id!r}")
        object.__setattr__(self, "prompt_id", pid)
        object.__setattr__(
            self, "payload", {**self.payload, "org_id": self.org_id, "prompt_id": pid}
        )

    @classmethod
    def for_prompt(
        cls,
        *,
        prompt_id: str | uuid.UUID,
        org_id: str,
        vector: Sequence[float] | Any,
        name: str,
        version: int,
        tags: Sequence[str] = (),
        labels: Sequence[str] = (),
        archived: bool = False,
        position: int = 0,
    ) -> VectorPoint:
        """Build a point with the standard prompt payload."""
        return cls(
            prompt_id=str(prompt_id),
            org_id=org_id,
            vector=vector,
            payload={
                "name": name,
                "version": int(version),
                "tags": list(tags),
                "labels": list(labels),
                "archived": bool(archived),
                "position": int(position),
            },
        )


@dataclass(frozen=True)
class VectorHit:
    """A search result: the prompt id, its similarity (cosine, higher is closer), payload."""

    prompt_id: str
    score: float
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class SearchFilter:
    """Engine-neutral description of a search filter, so both adapters agree exactly.

    ``must``: (key, value) pairs that all have to match (org_id first, one pair per tag,
    the label); ``must_not``: (key, value) pairs that must not match; ``exclude_ids``:
    point ids to leave out.
    """

    must: tuple[tuple[str, str | bool], ...]
    must_not: tuple[tuple[str, str | bool], ...]
    exclude_ids: tuple[str, ...]

    @classmethod
    def build(
        cls,
        org_id: str,
        *,
        tags: Sequence[str] = (),
        label: str | None = None,
        include_archived: bool = False,
        exclude_ids: Sequence[str] = (),
    ) -> SearchFilter:
        """The filter every search uses: org must-filter plus the optional narrowing."""
        if not org_id:
            raise ValueError("org_id is required: every search is tenant-scoped")
        if isinstance(tags, str):
            raise TypeError("tags must be a sequence of strings, not a string")
        must: list[tuple[str, str | bool]] = [("org_id", org_id)]
        must += [("tags", tag) for tag in dict.fromkeys(tags)]
        if label is not None:
            must.append(("labels", label))
        must_not: list[tuple[str, str | bool]] = []
        if not include_archived:
            # must_not archived=true (rather than must archived=false) so a point that
            # lacks the field is still found.
            must_not.append(("archived", True))
        ids = tuple(canonical_id(i) for i in exclude_ids)
        return cls(must=tuple(must), must_not=tuple(must_not), exclude_ids=ids)


@runtime_checkable
class VectorIndex(Protocol):
    """What the vector projection and the search query need from a vector store."""

    dim: int

    def ensure_ready(self) -> None:
        """Create the collection/shard and its payload indexes if missing (idempotent)."""

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points by prompt id; returns once the write is accepted."""

    def delete(self, prompt_ids: Sequence[str]) -> None:
        """Remove points by prompt id; unknown ids are ignored."""

    def search(
        self,
        org_id: str,
        vector: Sequence[float],
        limit: int,
        *,
        tags: Sequence[str] = (),
        label: str | None = None,
        include_archived: bool = False,
        exclude_ids: Sequence[str] = (),
    ) -> list[VectorHit]:
        """Nearest prompts of one org, best first.

        ``tags``: the point must carry all of them. ``label``: the point must carry it.
        Archived prompts are left out unless ``include_archived``. ``exclude_ids`` drops
        those prompt ids (e.g. the prompt a "similar prompts" query starts from).
        """

    def retrieve_vector(self, org_id: str, prompt_id: str) -> list[float] | None:
        """The stored vector of one prompt of this org, or None (absent or other org)."""

    def count(self, org_id: str | None = None) -> int:
        """Exact number of points, of one org or of all."""

    def reset(self) -> None:
        """Drop every point and recreate an empty, ready index (for rebuilds)."""

    def optimize(self) -> bool:
        """Build pending search indexes now; True if anything was built."""

    def maybe_optimize(self) -> bool:
        """Optimize only if enough un-indexed writes accumulated; call after each batch."""

    def close(self) -> None:
        """Release the engine (files, connections); the object is unusable afterwards."""
