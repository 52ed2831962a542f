"""Server-side render time of the web console's main pages with 10,000 prompts in the organisation.

The goal (issue 13): the prompt list, the prompt page and the diff render in < 50 ms median. Each page
is requested through the ASGI app in-process (TestClient: routing, the session cookie checked against
the event store, the access policy, the read-model queries and the Jinja2 rendering are in; the
network and the browser are not), signed in as the owner, SQLite (embedded default). The ceilings in
the same run are the REST calls reading the same data (`GET …/prompts`, `GET …/prompts/{id}`,
`GET …/diff`) and `/healthz`. Interleaved rounds; per round the median and p90 of the requests; the
report gives the median of those over the rounds and their p10–p90 spread.

    .venv/bin/python bench/console_pages.py [--prompts 10000] [--requests 60] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Stats, machine_facts, markdown_table, sqlite_settings, write_results  # noqa: E402
from bench.render_latency import percentile  # noqa: E402

PASSWORD = "correct horse battery staple"
GOAL_MS = 50.0


def seed(app, owner, org, count: int) -> str:
    """`count` prompts in 200 folders (two levels), one of them with 12 versions and two labels."""
    body = ("You answer questions about {{product}} for the {{team}} team. Keep it short, cite the policy, "
            "and never promise a refund you cannot give. ")
    started = time.perf_counter()
    target = None
    for i in range(count):
        name = f"team-{i % 20:02d}/area-{i % 10}/prompt-{i:05d}"
        pid = app.create_prompt(owner, org, name=name, template=body * 3 + f"Case {i}: {{{{question}}}}",
                                tags=[f"t{i % 7}"], message="seed", request_id="bench").id
        if i == count // 2:
            target = pid
        if (i + 1) % 2000 == 0:
            print(f"  {i + 1} prompts, {time.perf_counter() - started:.0f} s", flush=True)
    template = body * 3 + "Case target: {{question}}"
    for version in range(2, 13):
        template = template.replace("short", f"short ({version})", 1) + f"\nRevision {version} adds a line."
        app.revise_prompt(owner, org, target, base_version=version - 1, template=template,
                          message=f"revision {version}", request_id="bench")
    app.move_label(owner, org, target, "staging", 11, "bench", expected_version=0)
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=60, help="requests per page per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import application.security as security
    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient

    from application import Principal
    from interfaces.bootstrap import build
    from interfaces.http.app import create_app

    security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # one login, cheap
    tmp = Path(tempfile.mkdtemp(prefix="pf-bench-console-"))
    container = build(sqlite_settings(tmp, inprocess_projections=False, rate_limit_per_minute=10_000_000))
    app = container.app
    user_id, _ = app.register_user("bench@example.com", PASSWORD, "Bench", "bench")
    owner = Principal.user(user_id)
    org = app.create_organisation(owner, "Bench", "bench").id
    app.update_organisation(owner, org, "bench", plan="PRO")
    print(f"seeding {args.prompts} prompts ...", flush=True)
    started = time.perf_counter()
    pid = seed(app, owner, org, args.prompts)
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    container.supervisor.catch_up()
    projected = time.perf_counter() - started
    print(f"seeded in {seeded:.0f} s, projected in {projected:.0f} s", flush=True)
    assert container.catalogue.list(str(org), limit=1).items, "the catalogue has the prompts"

    client = TestClient(create_app(container), base_url="http://testserver", follow_redirects=False)
    page = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    signed = client.post("/console/login", data={"csrf_token": token, "email": "bench@example.com",
                                                 "password": PASSWORD}, headers={"Origin": "http://testserver"})
    assert signed.status_code == 303, signed.text
    bearer = {"Authorization": "Bearer " + client.post("/v1/auth/login", json={
        "email": "bench@example.com", "password": PASSWORD}).json()["access_token"]}
    console = f"/console/orgs/{org}"
    api = f"/v1/orgs/{org}"
    variants = {
        "console: prompt list (first page of 50)": lambda: client.get(f"{console}/prompts"),
        "console: prompt list, one folder": lambda: client.get(f"{console}/prompts?folder=team-07/area-7"),
        "console: folder tree, top level (fragment the list loads)": lambda: client.get(
            f"{console}/prompts/folders", headers={"HX-Request": "true"}),
        "console: prompt page (12 versions)": lambda: client.get(f"{console}/prompts/{pid}"),
        "console: diff v1 → v12": lambda: client.get(f"{console}/prompts/{pid}/diff?from=1&to=12"),
        "ceiling: REST GET …/prompts (50)": lambda: client.get(f"{api}/prompts", headers=bearer),
        "ceiling: REST GET …/prompts/{id}": lambda: client.get(f"{api}/prompts/{pid}", headers=bearer),
        "ceiling: REST GET …/diff": lambda: client.get(f"{api}/prompts/{pid}/diff?from=1&to=12", headers=bearer),
        "ceiling: GET /healthz": lambda: client.get("/healthz"),
    }
    for name, call in variants.items():  # warm up, and prove each works
        for _ in range(10):
            response = call()
            assert response.status_code == 200, (name, response.status_code, response.text[:500])
    assert "prompt-" in client.get(f"{console}/prompts").text and "Revision 12" in client.get(
        f"{console}/prompts/{pid}/diff?from=1&to=12").text
    medians: dict[str, list[float]] = {name: [] for name in variants}
    p90s: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, call in variants.items():
            samples = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                call()
                samples.append((time.perf_counter() - t0) * 1000)
            medians[name].append(percentile(samples, 0.5))
            p90s[name].append(percentile(samples, 0.9))
    container.close()

    rows, results = [], {}
    for name in variants:
        med, p90 = Stats.of(medians[name]), Stats.of(p90s[name])
        goal = "" if name.startswith("ceiling") else ("yes" if med.median < GOAL_MS else "**no**")
        rows.append([name, f"{med.median:.1f}", f"{med.p10:.1f}–{med.p90:.1f}", f"{p90.median:.1f}", goal])
        results[name] = {"median_ms": round(med.median, 2), "median_p10_ms": round(med.p10, 2),
                         "median_p90_ms": round(med.p90, 2), "p90_ms": round(p90.median, 2),
                         "rounds": args.rounds, "requests_per_round": args.requests}
    table = markdown_table(["page (ms per request)", "median", "median p10–p90 over rounds", "p90",
                            f"< {GOAL_MS:.0f} ms"], rows)
    facts = machine_facts()
    report = "\n".join([
        f"# Console pages with {args.prompts:,} prompts in the organisation", "",
        f"{args.rounds} interleaved rounds × {args.requests} requests per page, SQLite (embedded default), one "
        "thread, in-process ASGI (TestClient): the session cookie, the access policy, the read-model queries and "
        "the Jinja2 rendering are in; the network and the browser are not. The list page fetches its folder tree "
        "(counting every folder's prompts) as a separate fragment after it is shown: measured on its own row. "
        "The prompt page's prompt has 12 "
        "versions and two labels; the folder holds 1 in 20 of the prompts (a page shows 50). Ceilings: the REST reads of the same data.", "",
        f"- seeding: {args.prompts:,} prompts through `create_prompt` in {seeded:.0f} s, projected in {projected:.0f} s",
        *[f"- {fact}" for fact in facts], "", table, ""])
    print(report)
    write_results(ROOT / "bench" / "results" / "console_pages.md", report)
    (ROOT / "bench" / "results" / "console_pages.json").write_text(json.dumps(
        {"prompts": args.prompts, "goal_ms": GOAL_MS, "facts": facts, "pages": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
