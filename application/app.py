"""The PromptForge application: every command of the registry on one event store.

One application (one notification log) keeps a single total order of events, which is what
projections track; commands are grouped by area in mixin modules to keep files small.
"""
from __future__ import annotations

from application.api_keys import ApiKeyCommands
from application.governance import GovernanceCommands
from application.webhooks import WebhookCommands
from application.identity import IdentityCommands
from application.organisations import OrganisationCommands
from application.prompts import PromptCommands


class PromptForge(WebhookCommands, GovernanceCommands, PromptCommands, ApiKeyCommands, OrganisationCommands, IdentityCommands):
    name = "PromptForge"
