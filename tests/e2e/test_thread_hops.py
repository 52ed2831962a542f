"""An org route decides its org scope on the event loop (adr/0030): with the caches warm and the log
unchanged, a request to a route with a sync endpoint goes through the thread pool only for what
FastAPI sends there for a sync endpoint: the endpoint, then its response's validation. The org
scope in the thread pool made it three hops."""
from __future__ import annotations

import anyio.to_thread


def test_a_warm_org_scope_costs_no_thread_hop(api, monkeypatch):
    owner = api.user("owner")
    org = api.org(owner)
    api.prompt(owner, org, "greet", "Hello {{name}}")
    path = f"/v1/orgs/{org}/prompts"
    for _ in range(2):  # the caches hold the user and the organisation, the log head is known
        assert api.get(path, headers=owner.h).status_code == 200
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func, *args, **kwargs):
        hops.append(repr(func))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    r = api.get(path, headers=owner.h)
    assert r.status_code == 200
    assert len(hops) == 2 and "_run_sync_endpoint" in hops[0] and "loc=('response',)" in hops[1], hops
