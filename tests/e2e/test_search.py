"""Search over HTTP: keyword without a vector index, hybrid and similar with one; tenant-scoped."""
from __future__ import annotations

from tests.e2e.support import assert_error


def test_keyword_search_without_vectors_and_its_degradations(api):
    owner, viewer = api.user("owner"), api.user("viewer")
    org = api.org(owner)
    api.add(owner, org, viewer, "viewer")
    refund = api.prompt(owner, org, "refund-policy", "Explain our refund policy for {{product}}", tags=["billing"])
    api.prompt(owner, org, "haiku", "Write a haiku about {{topic}}", tags=["fun"])
    other = api.user("other")
    foreign_org = api.org(other, "Foreign")
    api.prompt(other, foreign_org, "foreign-refund", "Refund everything to {{who}}")

    r = api.search(org, viewer, {"query": "refund policy", "mode": "keyword"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["prompt_id"] for i in body["items"]] == [refund] and body["mode"] == "keyword"
    assert "foreign" not in r.text.lower()
    assert api.search(org, viewer, {"query": "refund", "mode": "keyword", "tags": ["fun"]}).json()["items"] == []
    hybrid = api.search(org, viewer, {"query": "refund"}).json()
    assert hybrid["degraded"] is True and [i["name"] for i in hybrid["items"]] == ["refund-policy"]
    assert_error(api.search(org, viewer, {"query": "refund", "mode": "semantic"}),
                 503, "SEARCH_UNAVAILABLE")
    assert_error(api.q(f"/v1/orgs/{org}/prompts/{refund}/similar", viewer), 503, "SEARCH_UNAVAILABLE")
    assert_error(api.search(org, viewer, {"query": ""}), 422, "VALIDATION_ERROR")
    assert_error(api.search(org, viewer, {"query": "x", "mode": "psychic"}), 422,
                 "VALIDATION_ERROR")
    assert_error(api.search(org, viewer, {"query": "x", "sql": "drop"}), 422, "VALIDATION_ERROR")
    for q in ('"', "AND OR NOT", "*", "refund) OR (1=1", "NEAR(a b)", "'; --", "_", "😀"):
        assert api.search(org, viewer, {"query": q, "mode": "keyword"}).status_code == 200, q


def test_hybrid_search_and_similar_with_the_vector_index(api_factory):
    api = api_factory(vectors_enabled=True)
    owner = api.user("owner")
    org = api.org(owner)
    refund = api.prompt(owner, org, "refund-policy", "Explain our refund policy for {{product}} to an upset customer")
    money = api.prompt(owner, org, "money-back", "Tell the customer how to get their money back for {{order}}")
    api.prompt(owner, org, "haiku", "Write a haiku about autumn leaves in {{place}}")
    assert api.container.supervisor.wait_for(api.position, 120, ["catalogue", "vectors"])
    r = api.search(org, owner, {"query": "reimbursement for a purchase", "mode": "semantic"})
    assert r.status_code == 200, r.text
    assert {i["prompt_id"] for i in r.json()["items"][:2]} == {refund, money}
    hybrid = api.search(org, owner, {"query": "refund"}).json()
    assert hybrid["degraded"] is False and hybrid["items"][0]["prompt_id"] == refund
    similar = api.q(f"/v1/orgs/{org}/prompts/{refund}/similar", owner, params={"limit": 1}).json()
    assert [i["prompt_id"] for i in similar["items"]] == [money]
