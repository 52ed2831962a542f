"""The one place where read-model projections are listed (add a line to add one)."""
from __future__ import annotations

from projections.api_keys import ApiKeys
from projections.audit import AuditLog
from projections.catalogue import Catalogue
from projections.label_history import LabelHistory
from projections.memberships import Memberships
from projections.sessions import Sessions
import projections.keyword_search  # noqa: F401  (registers the full-text DDL on rm_prompts)
from projections.versions import VersionHistory

SQL_PROJECTIONS = (Catalogue, VersionHistory, LabelHistory, Memberships, ApiKeys, AuditLog, Sessions)
