"""The main flow end to end (the README walk-through): register, login, org, prompt, revise,
promote, fetch by name, API key, fetch with the key."""
from tests.e2e.support import assert_error


def test_main_flow(api):
    owner = api.user("owner")
    org = api.org(owner, "Acme")
    pid = api.prompt(owner, org, "support-reply", "Answer {{question}}", tags=["support"], message="v1")
    assert api.revise(owner, org, pid, 1, "Kindly answer {{question}}", message="kinder") == 2
    r = api.label(owner, org, pid, "production", 2, expected_version=0)
    assert r.status_code == 200 and r.json()["version"] == 2
    r = api.q(f"/v1/orgs/{org}/prompts/by-name/support-reply", owner, params={"label": "production"})
    assert r.status_code == 200, r.text
    assert r.json()["template"] == "Kindly answer {{question}}" and r.headers["etag"] == f'"{pid}:2"'
    key = api.key(owner, org, ["prompts:read"])
    r = api.get(f"/v1/orgs/{org}/prompts/by-name/support-reply?label=production", headers=key.h)
    assert r.status_code == 200 and r.json()["version"] == 2
    assert_error(api.get(f"/v1/orgs/{org}/prompts/by-name/nope", headers=key.h), 404, "PROMPT_NOT_FOUND")
