"""The plan's prompt counter of one organisation, on a stream of its own (adr/0025).

Every prompt creation counts here, in the same save as the prompt, so the plan's limit stays exact:
the count and the plan it is checked against live on one stream, and a plan change writes here too
(a creation and a downgrade that race collide in the event store instead of both passing). The
Organisation is no longer written by creations: membership, roles and keys are not contended by
them, and what caches the Organisation for authorisation stays warm while prompts are created.

Organisations created before this counted prompts on their own stream (`Organisation.PromptAdded`);
their quota is opened, on first use, from that count."""
from __future__ import annotations

from uuid import UUID, uuid5

from domain.base import AuditedAggregate
from domain.errors import LimitExceeded
from domain.ids import NAMESPACE
from domain.permissions import PLAN_LIMITS, parse_plan


class PromptQuota(AuditedAggregate):
    class Opened(AuditedAggregate.Created):
        org_id: UUID
        plan: str
        #: Prompts the organisation already had (counted on its own stream before adr/0025).
        count: int

        def apply(self, quota: "PromptQuota") -> None:
            quota.org_id = self.org_id
            quota.plan = self.plan
            quota.count = self.count

    class PromptCounted(AuditedAggregate.Event):
        org_id: UUID
        prompt_id: UUID

        def apply(self, quota: "PromptQuota") -> None:
            quota.count += 1

    class PlanSet(AuditedAggregate.Event):
        org_id: UUID
        plan: str

        def apply(self, quota: "PromptQuota") -> None:
            quota.plan = self.plan

    @staticmethod
    def id_for(org_id: UUID) -> UUID:
        return uuid5(NAMESPACE, f"prompt-quota:{org_id}")

    @classmethod
    def open(cls, org_id: UUID, plan: str, count: int = 0) -> "PromptQuota":
        return cls._create(cls.Opened, id=cls.id_for(org_id), org_id=org_id, plan=parse_plan(plan).value, count=count)

    @property
    def limit(self) -> int:
        return PLAN_LIMITS[parse_plan(self.plan)].prompts

    def count_prompt(self, prompt_id: UUID) -> None:
        """One more prompt, within the plan's limit (PLAN_LIMIT_EXCEEDED otherwise)."""
        if self.count >= self.limit:
            raise LimitExceeded("prompt limit of the plan reached", details={"resource": "prompts", "limit": self.limit})
        self.trigger_event(self.PromptCounted, org_id=self.org_id, prompt_id=prompt_id)

    def set_plan(self, plan: str) -> None:
        """Follow the organisation's plan (its change checks that the count fits the new limit)."""
        plan = parse_plan(plan).value
        if plan != self.plan:
            self.trigger_event(self.PlanSet, org_id=self.org_id, plan=plan)
