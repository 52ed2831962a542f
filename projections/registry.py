"""The one place where read-model projections are listed (add a line to add one)."""
from __future__ import annotations

from projections.api_keys import ApiKeys
from projections.audit import AuditLog
from projections.catalogue import Catalogue
from projections.changes import Changes
from projections.label_history import LabelHistory
from projections.memberships import Memberships
from projections.releases import Releases
from projections.reviews import Reviews
from projections.sessions import Sessions
from projections.webhooks import Webhooks
from projections.vectors.projection import vector_docs  # noqa: F401  (registers the vector projection's table)

SQL_PROJECTIONS = (Catalogue, LabelHistory, Memberships, ApiKeys, AuditLog, Sessions, Reviews, Releases, Changes, Webhooks)
#: Projections that existed once and were folded into others: their bookkeeping is removed at start.
RETIRED = ("versions",)
