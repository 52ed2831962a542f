"""Demo data: the public-domain corpus loaded through the real commands (never by SQL)."""
from __future__ import annotations

import csv
import random
from collections.abc import Callable
from pathlib import Path

from application import Principal, PromptForge
from domain.errors import Conflict
from domain.values import INCLUDE_SYNTAX

DEMO_PASSWORD = "promptforge-demo-password"
DEMO_ORGS = ("Acme Research", "Globex Support", "Initech Marketing")


def read_corpus(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(10**9)
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def prompt_names(rows: list[dict[str, str]]) -> list[str]:
    """Titles made valid and unique: '/' replaced by '-', include syntax (`@ # { }`) dropped,
    duplicates suffixed ' (2)', ' (3)' in file order."""
    seen: dict[str, int] = {}
    names = []
    for row in rows:
        title = row["act"].replace("/", "-").translate({ord(c): " " for c in INCLUDE_SYNTAX})
        base = " ".join(title.split())[:190] or "Untitled"
        seen[base.casefold()] = seen.get(base.casefold(), 0) + 1
        n = seen[base.casefold()]
        names.append(base if n == 1 else f"{base} ({n})")
    return names


def seed_demo(app: PromptForge, corpus: Path, limit: int | None = None, seed: int = 42,
              progress: Callable[[int], None] | None = None) -> dict[str, object]:
    rng = random.Random(seed)
    rows = read_corpus(corpus)[:limit]
    names = prompt_names(rows)
    users = {}
    for role in ("owner", "developer", "reviewer"):
        email = f"demo-{role}@promptforge.local"
        try:
            users[role], _ = app.register_user(email, DEMO_PASSWORD, f"Demo {role.title()}", "seed")
        except Conflict:
            users[role] = app.find_user_id(email)
    owner = Principal.user(users["owner"])
    orgs = []
    for i, org_name in enumerate(DEMO_ORGS):
        org = app.create_organisation(owner, org_name, "seed", idempotency_key=f"seed-org-{i}").id
        orgs.append(org)
        if app.get_organisation(owner, org).plan != "PRO":
            app.update_organisation(owner, org, "seed", plan="PRO")
            app.add_member(owner, org, "developer", "seed", user_id=users["developer"])
            app.add_member(owner, org, "reviewer", "seed", user_id=users["reviewer"])
    dev, rev = Principal.user(users["developer"]), Principal.user(users["reviewer"])
    created = 0
    for i, (row, name) in enumerate(zip(rows, names)):
        org = orgs[i % len(orgs)]
        tags = [row["type"].lower(), "for-devs" if row["for_devs"].upper() == "TRUE" else "general"]
        result = app.create_prompt(owner, org, name=name, template=row["prompt"], tags=tags,
                                   model_config={"model": "gpt-4o-mini", "temperature": 0.7},
                                   message=f"Imported from awesome-chatgpt-prompts (by {row['contributor']})",
                                   template_format="plain",  # imported text: its braces are literal
                                   request_id="seed", idempotency_key=f"seed-prompt-{i}")
        if result.replayed:
            continue
        created += 1
        version = 1
        if rng.random() < 0.3:
            app.revise_prompt(dev, org, result.id, base_version=1, request_id="seed",
                              template=row["prompt"].rstrip() + "\n\nAnswer concisely.",
                              message="Ask for concise answers", tags=tags + ["concise"])
            version = 2
        app.move_label(dev, org, result.id, "staging", version, "seed")
        if rng.random() < 0.5:  # production is protected: the reviewer requests, the owner approves
            _promote(app, rev, owner, org, result.id, 1, 0)
            if version == 2 and rng.random() < 0.5:
                _promote(app, rev, owner, org, result.id, 2, 1)
        if progress:
            progress(1)
    return {"users": {r: f"demo-{r}@promptforge.local" for r in users}, "password": DEMO_PASSWORD,
            "orgs": [str(o) for o in orgs], "prompts_created": created}


def _promote(app: PromptForge, requester: Principal, approver: Principal, org, prompt_id, version: int,
             expected: int) -> None:
    review = app.request_review(requester, org, prompt_id=prompt_id, label="production", version=version,
                                expected_version=expected, reason="demo promotion", request_id="seed")
    app.approve_review(approver, org, review.id, "looks good", "seed")
