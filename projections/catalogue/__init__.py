"""The catalogue read model (prompts, tags, labels, versions) and its full-text index."""
from projections.catalogue.fulltext import KeywordHit, KeywordSearch
from projections.catalogue.projection import Catalogue, Page
from projections.catalogue.tables import prompt_labels, prompt_tags, prompt_versions, prompts

__all__ = ["Catalogue", "KeywordHit", "KeywordSearch", "Page", "prompt_labels", "prompt_tags", "prompt_versions",
           "prompts"]
