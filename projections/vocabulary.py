"""The public vocabulary of changes (feed, webhooks): event class -> (type, audience).

Stable, documented names mapped explicitly, never derived from class names (a renamed class must not
change what subscribers receive). Shared by the change-feed read model and the webhook outbox."""
from __future__ import annotations

from domain.api_key import ApiKey
from domain.organisation import Organisation
from domain.prompt import Prompt
from domain.release import Release
from domain.review import ReviewRequest
from domain.webhook import CHANGE_TYPES, Webhook

PROMPTS, AUDIT = "prompts", "audit"
#: The public vocabulary: event class -> (type, audience). Documented in the README.
TYPES: dict[type, tuple[str, str]] = {
    Prompt.Created: ("prompt.created", PROMPTS), Prompt.Revised: ("prompt.revised", PROMPTS),
    Prompt.LabelMoved: ("prompt.label_moved", PROMPTS), Prompt.LabelRemoved: ("prompt.label_removed", PROMPTS),
    Prompt.Archived: ("prompt.archived", PROMPTS), Prompt.Restored: ("prompt.restored", PROMPTS),
    Prompt.Renamed: ("prompt.renamed", PROMPTS),
    ReviewRequest.Requested: ("review.requested", PROMPTS), ReviewRequest.Approved: ("review.approved", PROMPTS),
    ReviewRequest.Rejected: ("review.rejected", PROMPTS), ReviewRequest.Withdrawn: ("review.withdrawn", PROMPTS),
    ReviewRequest.Applied: ("review.applied", PROMPTS), ReviewRequest.Superseded: ("review.superseded", PROMPTS),
    Release.Created: ("release.applied", PROMPTS), Release.RolledBack: ("release.rolled_back", PROMPTS),
    Organisation.Created: ("organisation.created", AUDIT), Organisation.Renamed: ("organisation.renamed", AUDIT),
    Organisation.PlanChanged: ("organisation.plan_changed", AUDIT),
    Organisation.ProtectedLabelsChanged: ("organisation.protected_labels_changed", AUDIT),
    Organisation.MemberAdded: ("member.added", AUDIT), Organisation.MemberRoleChanged: ("member.role_changed", AUDIT),
    Organisation.MemberRemoved: ("member.removed", AUDIT),
    ApiKey.Issued: ("api_key.issued", AUDIT), ApiKey.Revoked: ("api_key.revoked", AUDIT),
    Webhook.Created: ("webhook.created", AUDIT), Webhook.Updated: ("webhook.updated", AUDIT),
    Webhook.SecretRotated: ("webhook.secret_rotated", AUDIT), Webhook.Disabled: ("webhook.disabled", AUDIT),
    Webhook.Enabled: ("webhook.enabled", AUDIT), Webhook.Deleted: ("webhook.deleted", AUDIT),
}
assert sorted(t for t, _ in TYPES.values()) == sorted(CHANGE_TYPES), "domain.webhook.CHANGE_TYPES is the vocabulary"
#: Event attributes a change may carry in `details` (never secrets, hashes or fingerprints; never a
#: webhook URL either: some receivers put their own secret in it).
DETAILS = ("from_version", "to_version", "split", "from_name", "to_name", "tags", "message", "type", "kind", "status",
           "comment", "reason", "review_id", "release_id", "rollback_release_id", "protected_labels", "role",
           "old_role", "new_role", "user_id", "plan", "permissions", "prefix", "approver", "requester", "events",
           "description", "generation")
