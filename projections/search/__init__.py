"""Search across the catalogue's full text and the vector index (a query service, no tables)."""
from projections.search.service import (
    CANDIDATES, KEYWORD_WEIGHT, RRF_K, IndexFreshness, SearchResponse, SearchResult, SearchService,
    SemanticSearchUnavailable, rrf,
)

__all__ = ["CANDIDATES", "KEYWORD_WEIGHT", "RRF_K", "IndexFreshness", "SearchResponse", "SearchResult", "SearchService",
           "SemanticSearchUnavailable", "rrf"]
