"""Render latency of a composed prompt (3 nested includes) beside a plain one, same run.

Both prompts are rendered over HTTP (the ASGI app in-process through httpx, so the network stack is
out of the picture but routing, auth, the policy, the event store and composition are in) and
through the application directly; the by-name fetch (served from the catalogue, composed there) is
measured the same way. The ceiling beside them is the same request on a prompt with no include at
all: what composition costs is the difference. Interleaved rounds, median and p99 per round.

    .venv/bin/python bench/render_latency.py [--requests 400] [--rounds 5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Stats, machine_facts, markdown_table, sqlite_settings, write_results  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400, help="requests per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from application import Principal
    from interfaces.bootstrap import build
    from interfaces.http.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="pf-bench-render-"))
    container = build(sqlite_settings(tmp, inprocess_projections=True, rate_limit_per_minute=10_000_000))
    container.start()
    app = container.app
    user_id, _ = app.register_user("bench@example.com", "correct horse battery staple", "B", "bench")
    owner = Principal.user(user_id)
    org = app.create_organisation(owner, "Bench", "bench").id
    # includes resolve `production`; the bench moves it directly (no review gate: adr/0014)
    app.update_organisation(owner, org, "bench", plan="PRO", protected_labels=[])
    body = "Answer the customer's question about {{product}} politely and precisely. " * 4
    levels = ["shared/footer", "shared/signature", "shared/tone"]
    previous = None
    for name in levels:  # footer <- signature <- tone: tone includes signature includes footer
        text = (f"{{{{> {previous}}}}} " if previous else "") + f"{name}: {body}"
        pid = app.create_prompt(owner, org, name=name, template=text, request_id="bench").id
        app.move_label(owner, org, pid, "production", 1, "bench")
        previous = name
    composed = app.create_prompt(owner, org, name="composed", template="{{> shared/tone}} Question: {{question}}",
                                 request_id="bench").id
    plain = app.create_prompt(owner, org, name="plain", template=body * 3 + " Question: {{question}}",
                              request_id="bench").id
    container.supervisor.wait_for(app.head_position(), 30)
    client = TestClient(create_app(container))
    token = client.post("/v1/auth/login", json={"email": "bench@example.com",
                                                "password": "correct horse battery staple"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    values = {"product": "PromptForge", "question": "How do I roll back a label?"}
    variants = {
        "render, plain (ceiling)": lambda: client.post(f"/v1/orgs/{org}/prompts/{plain}/render",
                                                       json={"variables": values}, headers=headers),
        "render, 3 nested includes": lambda: client.post(f"/v1/orgs/{org}/prompts/{composed}/render",
                                                         json={"variables": values}, headers=headers),
        "fetch by name, plain (ceiling)": lambda: client.get(f"/v1/orgs/{org}/prompts/by-name/plain", headers=headers),
        "fetch by name, 3 nested includes": lambda: client.get(f"/v1/orgs/{org}/prompts/by-name/composed",
                                                               headers=headers),
        "app.render_prompt, plain (ceiling)": lambda: app.render_prompt(owner, org, plain, values),
        "app.render_prompt, 3 nested includes": lambda: app.render_prompt(owner, org, composed, values),
    }
    for call in variants.values():  # warm up, and prove each works
        for _ in range(20):
            result = call()
            assert getattr(result, "status_code", 200) == 200, result.text
    medians: dict[str, list[float]] = {name: [] for name in variants}
    p99s: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, call in variants.items():  # interleaved: every variant in every round
            samples = []
            for _ in range(args.requests):
                started = time.perf_counter()
                call()
                samples.append((time.perf_counter() - started) * 1000)
            medians[name].append(percentile(samples, 0.5))
            p99s[name].append(percentile(samples, 0.99))
    container.close()
    rows = []
    for name in variants:
        med, p99 = Stats.of(medians[name]), Stats.of(p99s[name])
        rows.append([name, f"{med.median:.2f}", f"{med.p10:.2f}–{med.p90:.2f}", f"{p99.median:.2f}",
                     f"{p99.p10:.2f}–{p99.p90:.2f}"])
    table = markdown_table(["variant (ms per call)", "median", "median p10–p90 over rounds", "p99", "p99 p10–p90"],
                           rows)
    report = "\n".join([
        "# Render latency: 3 nested includes vs none", "",
        f"{args.rounds} interleaved rounds × {args.requests} calls per variant, SQLite (embedded default), one thread.",
        "The composed prompt includes `shared/tone`, which includes `shared/signature`, which includes",
        "`shared/footer` (each through its `production` label); the plain prompt has the same length of text",
        "and no include. Per round: median and p99 of the calls; the table gives the median of those over",
        "the rounds and their p10–p90 spread.", "",
        *[f"- {fact}" for fact in machine_facts()], "", table, ""])
    print(report)
    write_results(ROOT / "bench" / "results" / "render_latency.md", report)


if __name__ == "__main__":
    main()
