"""Search: semantic (vectors), keyword (full text) and hybrid (reciprocal-rank fusion).

A query service over two read models, the catalogue (rows, full text) and the vector index, which
advance independently. It therefore says when the index lags: with `min_position` it waits
(bounded) for both (a vector hit needs the catalogue's row), and whenever the index is behind (the position asked
for, or the catalogue) the answer is marked `degraded` with a notice. A vector hit is kept only
if the catalogue's row for it still matches the filters, so a lagging payload can never return,
say, an archived prompt to a search that excludes them."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from domain.values import AUTOMATIC_LABELS
from projections.catalogue import Catalogue, KeywordSearch
from projections.vectors.embedder import Embedder
from projections.vectors.index import VectorIndex, VectorIndexUnavailable

Mode = Literal["semantic", "keyword", "hybrid"]
#: RRF constant and the keyword ranking's weight. Chosen on the even half of the labelled query set
#: (bench/search_queries.jsonl) from a plateau (k 1..3, weight 0.5..0.7 all within 0.01 MRR), and
#: confirmed on the odd half; the textbook k=60 with equal weights scored *below* semantic alone
#: (MRR@10 0.776 vs 0.820), because full-text ranks are noisier than dense ones past the top few.
RRF_K = 2
KEYWORD_WEIGHT = 0.6
#: How many candidates each ranking contributes to the fusion.
CANDIDATES = 50


#: Answers whether the vector index is behind: given the position a query asked for (or None), a
#: notice explaining how it lags, or None when it is current (see interfaces.bootstrap).
IndexFreshness = Callable[[int | None], str | None]


class SemanticSearchUnavailable(Exception):
    """The vector index cannot be reached (semantic mode answers 503)."""


@dataclass
class SearchResult:
    prompt_id: str
    score: float
    row: dict[str, Any]
    ranks: dict[str, int] = field(default_factory=dict)


@dataclass
class SearchResponse:
    mode: Mode
    results: list[SearchResult]
    degraded: bool = False
    notice: str | None = None


def rrf(rankings: dict[str, Sequence[str]], k: int = RRF_K,
        weights: dict[str, float] | None = None) -> list[tuple[str, float, dict[str, int]]]:
    """Weighted reciprocal-rank fusion: score(d) = Σ w_i / (k + rank_i(d)), ranks starting at 1."""
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for source, ids in rankings.items():
        weight = (weights or {}).get(source, 1.0)
        for rank, doc in enumerate(ids, start=1):
            scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
            ranks.setdefault(doc, {})[source] = rank
    return sorted(((d, s, ranks[d]) for d, s in scores.items()), key=lambda x: (-x[1], x[0]))


class SearchService:
    def __init__(self, catalogue: Catalogue, keyword: KeywordSearch, index: VectorIndex | None,
                 embedder: Embedder | None, *, freshness: IndexFreshness | None = None,
                 observe: Callable[[str, float], None] | None = None):
        self.catalogue = catalogue
        self.keyword = keyword
        self.index = index
        self.embedder = embedder
        self.freshness = freshness
        self.observe = observe

    def search(self, org_id: str, query: str, mode: Mode = "hybrid", limit: int = 10, *, tags: Sequence[str] = (),
               label: str | None = None, include_archived: bool = False,
               min_position: int | None = None) -> SearchResponse:
        started = time.perf_counter()
        if label in AUTOMATIC_LABELS:  # every prompt has `latest`: no narrowing
            label = None
        try:
            # Wait (bounded) for the index first, so the dense ranking sees what was asked for.
            lag = self.freshness(min_position) if mode != "keyword" and self.freshness is not None else None
            response = self._search(str(org_id), query, mode, limit, tags, label, include_archived)
            if lag and not response.degraded:
                response.degraded, response.notice = True, lag
            return response
        finally:
            if self.observe:
                self.observe(mode, time.perf_counter() - started)

    def _search(self, org_id, query, mode, limit, tags, label, include_archived) -> SearchResponse:
        filters = {"tags": tags, "label": label, "include_archived": include_archived}
        if mode == "keyword":
            hits = self.keyword.search(org_id, query, limit, **filters)
            return SearchResponse(mode, [SearchResult(h.prompt_id, h.score, h.row, {"keyword": i})
                                         for i, h in enumerate(hits, 1)])
        try:
            if self.index is None or self.embedder is None:
                raise VectorIndexUnavailable("no vector index in this process")
            dense = self.index.search(org_id, self.embedder.embed_query(query), CANDIDATES if mode == "hybrid" else limit,
                                      **filters)
        except VectorIndexUnavailable:
            if mode == "semantic":
                raise SemanticSearchUnavailable("the vector index is unreachable") from None
            hits = self.keyword.search(org_id, query, limit, **filters)
            return SearchResponse(mode, [SearchResult(h.prompt_id, h.score, h.row, {"keyword": i})
                                         for i, h in enumerate(hits, 1)], degraded=True,
                                  notice="vector index unreachable: keyword results only")
        if mode == "semantic":
            return SearchResponse(mode, self._with_rows(org_id, [(h.prompt_id, h.score, {"semantic": i})
                                                                 for i, h in enumerate(dense, 1)], filters))
        keyword = self.keyword.search(org_id, query, CANDIDATES, **filters)
        fused = rrf({"semantic": [h.prompt_id for h in dense], "keyword": [h.prompt_id for h in keyword]},
                    weights={"keyword": KEYWORD_WEIGHT})
        return SearchResponse(mode, self._with_rows(org_id, fused, filters, limit))

    def similar(self, org_id: str, prompt_id: str, limit: int = 10) -> list[SearchResult] | None:
        """Nearest prompts to one prompt (itself excluded); None when it has no vector yet."""
        if self.index is None:
            raise SemanticSearchUnavailable("no vector index in this process")
        try:
            return self._similar(org_id, prompt_id, limit)
        except VectorIndexUnavailable:
            raise SemanticSearchUnavailable("the vector index is unreachable") from None

    def _similar(self, org_id: str, prompt_id: str, limit: int) -> list[SearchResult] | None:
        vector = self.index.retrieve_vector(str(org_id), str(prompt_id))
        if vector is None:
            return None
        hits = self.index.search(str(org_id), vector, limit, exclude_ids=[str(prompt_id)])
        return self._with_rows(org_id, [(h.prompt_id, h.score, {"semantic": i}) for i, h in enumerate(hits, 1)],
                               {"tags": (), "label": None, "include_archived": False})

    def _with_rows(self, org_id: str, scored, filters: dict[str, Any], limit: int | None = None) -> list[SearchResult]:
        """The catalogue's rows for ranked ids, best first, keeping only rows that match the
        filters now (the index's payload may lag the catalogue), up to `limit`."""
        out: list[SearchResult] = []
        for prompt_id, score, ranks in scored:
            if limit is not None and len(out) >= limit:
                break
            row = self.catalogue.get(org_id, prompt_id)  # tenant-scoped read; skips vanished rows
            if row is not None and _matches(row, **filters):
                out.append(SearchResult(prompt_id, score, row, ranks))
        return out


def _matches(row: dict[str, Any], *, tags: Sequence[str], label: str | None, include_archived: bool) -> bool:
    """Whether the catalogue's row satisfies the search filters (the index's payload may lag)."""
    if row["archived"] and not include_archived:
        return False
    if label is not None and label not in row["labels"]:
        return False
    return set(tags) <= set(row["tags"])
