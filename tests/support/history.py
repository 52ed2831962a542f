"""A realistic mixed history driven through the real commands (used by replay tests)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from uuid import UUID

from application import Principal, PromptForge
from domain.errors import DomainError
from tests.support.corpus import load_corpus


@dataclass
class World:
    users: dict[str, UUID] = field(default_factory=dict)
    orgs: dict[str, UUID] = field(default_factory=dict)
    prompts: dict[str, list[UUID]] = field(default_factory=dict)
    keys: dict[str, list[UUID]] = field(default_factory=dict)


def drive_history(app: PromptForge, *, orgs: int = 3, prompts_per_org: int = 12, seed: int = 7) -> World:
    """Several orgs, members with role changes, prompts from the corpus with revisions, label
    moves and removals, archive/restore, API keys issued and revoked; and prompt model v2: chat
    prompts with placeholders, folders, composed prompts including others, renames."""
    rng = random.Random(seed)
    corpus = load_corpus()
    world = World()
    for name in ("ann", "bob", "cat", "dan"):
        world.users[name], _ = app.register_user(f"{name}@example.com", f"{name}-correct-horse-battery", name.title(), f"reg-{name}")
    ann, bob, cat, dan = (Principal.user(world.users[n]) for n in ("ann", "bob", "cat", "dan"))
    rows = iter(corpus)
    for i in range(orgs):
        owner = [ann, bob, cat][i % 3]
        org = app.create_organisation(owner, f"Org {i}", f"org-{i}").id
        world.orgs[f"org{i}"] = org
        if i == 0:  # org 0 moves `production` directly; the others through reviews (protected, the default)
            app.update_organisation(owner, org, "plan", plan="PRO", protected_labels=[])
        others = [u for u in (ann, bob, cat, dan) if u != owner]
        app.add_member(owner, org, "developer", f"m1-{i}", user_id=others[0].user_id)
        app.add_member(owner, org, "reviewer", f"m2-{i}", user_id=others[1].user_id)
        app.change_member_role(owner, org, others[0].user_id, "admin", f"m3-{i}")
        app.add_member(owner, org, "viewer", f"m4-{i}", user_id=others[2].user_id)
        app.remove_member(owner, org, others[2].user_id, f"m5-{i}")
        app.update_organisation(owner, org, f"rn-{i}", name=f"Organisation {i}")
        ids = []
        for j in range(prompts_per_org):
            row = next(rows)
            created = app.create_prompt(
                owner, org, name=f"{row['act'][:150].replace('/', '-')} - {j}", template=row["prompt"][:4000] + " {{input}}",
                tags=[row["type"].lower(), "devs" if row["for_devs"] == "TRUE" else "general"],
                model_config={"model": "gpt-4o", "temperature": round(rng.random(), 2)}, message="import",
                request_id=f"p-{i}-{j}", template_format="plain",
            )
            ids.append(created.id)
            for v in range(rng.randint(0, 3)):
                app.revise_prompt(owner, org, created.id, base_version=v + 1, request_id=f"r-{i}-{j}-{v}",
                                  template=f"v{v + 2}: " + row["prompt"][:2000] + " {{input}}", message=f"edit {v}")
            prompt = app.read_prompt(owner, org, created.id)
            app.move_label(owner, org, created.id, "staging", prompt.latest_version, f"l1-{i}-{j}")
            if rng.random() < 0.7:
                target = rng.randint(1, prompt.latest_version)
                if i == 0:
                    app.move_label(owner, org, created.id, "production", target, f"l2-{i}-{j}", expected_version=0)
                else:  # requested by the reviewer, approved by the owner
                    review = app.request_review(Principal.user(others[1].user_id), org, prompt_id=created.id,
                                                label="production", version=target, expected_version=0,
                                                reason="promote", request_id=f"rq-{i}-{j}")
                    app.approve_review(owner, org, review.id, "ok", f"ap-{i}-{j}")
            if rng.random() < 0.2:
                app.remove_label(owner, org, created.id, "staging", f"l3-{i}-{j}")
            if rng.random() < 0.15:
                app.archive_prompt(owner, org, created.id, f"a-{i}-{j}")
                if rng.random() < 0.5:
                    app.restore_prompt(owner, org, created.id, f"ar-{i}-{j}")
            try:  # a refused command leaves no trace in the stream
                app.revise_prompt(owner, org, created.id, base_version=0, request_id="stale", template="x")
            except DomainError:
                pass
        ids += _model_v2(app, owner, org, i)
        _governance(app, owner, Principal.user(others[1].user_id), org, ids, i)
        world.prompts[f"org{i}"] = ids
        keys = [app.issue_api_key(owner, org, f"key {k}", ["prompts:read"], f"k-{i}-{k}").id for k in range(2)]
        app.revoke_api_key(owner, org, keys[0], f"kr-{i}")
        world.keys[f"org{i}"] = keys
    return world


def _model_v2(app: PromptForge, owner: Principal, org: UUID, i: int) -> list[UUID]:
    """Chat prompts, folders, composition (with a label move under it) and renames."""
    tone = app.create_prompt(owner, org, name=f"shared/tone-{i}", template="Be {{mood}}.", request_id=f"t-{i}",
                             variables=[{"name": "mood", "type": "string", "default": "kind"}]).id
    app.update_organisation(owner, org, f"unprotect-{i}", protected_labels=[])
    app.move_label(owner, org, tone, "production", 1, f"tl-{i}")
    app.revise_prompt(owner, org, tone, base_version=1, request_id=f"tr-{i}", template="Be very {{mood}}.")
    parent = app.create_prompt(owner, org, name=f"support/replies/refund-{i}",
                               template=f"{{{{> shared/tone-{i}}}}} Refund {{{{#items}}}}{{{{sku}}}} {{{{/items}}}}",
                               request_id=f"c-{i}").id
    chat = app.create_prompt(owner, org, name=f"support/chat-{i}", type="chat", request_id=f"ch-{i}", messages=[
        {"role": "system", "content": f"{{{{> shared/tone-{i}@production}}}} You help with {{{{product}}}}."},
        {"type": "placeholder", "name": "history"}, {"role": "user", "content": "{{question}}"}]).id
    app.revise_prompt(owner, org, chat, base_version=1, request_id=f"chr-{i}", messages=[
        {"role": "system", "content": "You help with {{product}}."}, {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{question}}?"}])
    app.move_label(owner, org, tone, "production", 2, f"tl2-{i}")
    app.update_organisation(owner, org, f"protect-{i}", protected_labels=["production"],
                            review_policies={"production": {"approvals": 1, "approver_roles": ["owner", "reviewer"]}})
    app.rename_prompt(owner, org, parent, f"support/billing/refund-{i}", f"rn-{i}")
    app.rename_prompt(owner, org, tone, f"shared/voice-{i}", f"rnt-{i}")  # includes by the old name keep resolving
    app.revise_prompt(owner, org, parent, base_version=1, request_id=f"cr-{i}",
                      template=f"{{{{> shared/tone-{i}#1}}}} Refund now.")
    return [tone, parent, chat]


def _governance(app: PromptForge, owner: Principal, reviewer: Principal, org: UUID, ids: list[UUID], i: int) -> None:
    """Releases (direct on `canary`, reviewed on `production`), a rollback, a rejected and a
    withdrawn request, a superseded one, and a traffic split."""
    first, second = ids[0], ids[1]
    app.create_release(owner, org, label="canary", request_id=f"rel-{i}", reason="canary", moves=[
        {"prompt_id": first, "version": 1, "expected_version": 0}, {"prompt_id": second, "version": 1, "expected_version": 0}])
    latest = app.read_prompt(owner, org, first).latest_version
    canary = app.create_release(owner, org, label="canary", request_id=f"rel2-{i}", reason="again", moves=[
        {"prompt_id": first, "version": latest, "expected_version": 1}])
    app.rollback_release(owner, org, canary.id, f"rb-{i}", reason="undo")
    current = {p: app.read_prompt(owner, org, p).labels.get("production", 0) for p in (first, second)}
    reviewed = app.create_release(reviewer, org, label="production", request_id=f"prel-{i}", reason="ship", moves=[
        {"prompt_id": p, "version": 1, "expected_version": current[p]} for p in (first, second)])
    app.approve_review(owner, org, reviewed.id, "ship it", f"pap-{i}")
    rejected = app.request_review(reviewer, org, prompt_id=first, label="production", version=1,
                                  expected_version=1, remove=True, reason="remove", request_id=f"rj-{i}")
    app.reject_review(owner, org, rejected.id, "no", f"rjd-{i}")
    withdrawn = app.request_review(reviewer, org, prompt_id=second, label="production", version=1, expected_version=1,
                                   reason="w", request_id=f"wd-{i}")
    app.withdraw_review(reviewer, org, withdrawn.id, f"wdd-{i}")
    stale = app.request_review(reviewer, org, prompt_id=second, label="production", version=1, expected_version=1,
                               reason="s", request_id=f"st-{i}")
    app.update_organisation(owner, org, f"unp-{i}", protected_labels=[])
    app.remove_label(owner, org, second, "production", f"rmp-{i}")
    app.update_organisation(owner, org, f"rep-{i}", protected_labels=["production"])
    try:
        app.approve_review(owner, org, stale.id, "late", f"sta-{i}")
    except DomainError:  # superseded: the label moved since the request
        pass
    prompt = app.read_prompt(owner, org, first)
    if prompt.latest_version >= 2:
        app.move_label(owner, org, first, "ab-test", None, f"ab-{i}",
                       split=[{"version": 1, "weight": 70}, {"version": 2, "weight": 30}])
