"""Search on real embeddings: tenant filter, revision, archive, replay convergence, outages."""
import pytest

from application import Principal
from interfaces.bootstrap import build
from projections.search import SemanticSearchUnavailable
from tests.support.corpus import load_corpus


@pytest.fixture
def search_container(make_settings):
    c = build(make_settings(vectors_enabled=True))
    yield c
    c.close()


def _org(app, email):
    user_id, _ = app.register_user(email, "correct horse battery", "u", "r")
    owner = Principal.user(user_id)
    org = app.create_organisation(owner, email, "r").id
    app.update_organisation(owner, org, "r", protected_labels=[])
    return owner, org


def _load(app, owner, org, rows):
    ids = {}
    for row in rows:
        ids[row["act"]] = app.create_prompt(owner, org, name=row["act"].replace("/", "-"), template=row["prompt"],
                                            tags=[row["type"].lower()], request_id="r").id
    return ids


ROWS = {r["act"]: r for r in load_corpus()[:40]}


def test_tenant_filter_with_identical_text(search_container):
    c = search_container
    a_owner, a = _org(c.app, "a@ex.com")
    b_owner, b = _org(c.app, "b@ex.com")
    rows = list(ROWS.values())[:10]
    a_ids = _load(c.app, a_owner, a, rows)
    b_ids = _load(c.app, b_owner, b, rows)
    c.supervisor.catch_up()
    for mode in ("semantic", "keyword", "hybrid"):
        found = c.search.search(a, "act as a linux terminal", mode=mode, limit=20)
        assert found.results, mode
        assert {r.prompt_id for r in found.results} <= {str(i) for i in a_ids.values()}, mode
        assert all(r.row["org_id"] == str(a) for r in found.results)
    top = c.search.search(b, "pretend to be a unix shell that runs my commands", mode="semantic", limit=3)
    assert top.results[0].prompt_id == str(b_ids["Linux Terminal"])
    assert c.vector_projection.index.count(str(a)) == c.vector_projection.index.count(str(b)) == 10


def test_revision_replaces_vector_and_archive_hides(search_container):
    c = search_container
    owner, org = _org(c.app, "rev@ex.com")
    ids = _load(c.app, owner, org, list(ROWS.values())[:8])
    target = ids["Linux Terminal"]
    c.supervisor.catch_up()
    c.app.revise_prompt(owner, org, target, base_version=1, request_id="r",
                        template="You are a pastry chef. Give me recipes for French croissants and baguettes.")
    c.supervisor.catch_up()
    assert c.vector_projection.index.count(str(org)) == 8  # replaced, not added
    hit = c.search.search(org, "baking bread and pastries", mode="semantic", limit=1).results[0]
    assert hit.prompt_id == str(target) and hit.row["latest_version"] == 2
    c.app.archive_prompt(owner, org, target, "r")
    c.supervisor.catch_up()
    assert str(target) not in {r.prompt_id for r in c.search.search(org, "baking bread", mode="semantic").results}
    assert str(target) not in {r.prompt_id for r in c.search.search(org, "croissants", mode="keyword").results}
    archived = c.search.search(org, "baking bread", mode="semantic", include_archived=True).results
    assert str(target) in {r.prompt_id for r in archived}
    similar = c.search.similar(org, ids["English Translator and Improver"], limit=5)
    assert similar and str(ids["English Translator and Improver"]) not in {r.prompt_id for r in similar}


def test_replay_converges_to_the_same_index(search_container):
    c = search_container
    owner, org = _org(c.app, "replay@ex.com")
    ids = _load(c.app, owner, org, list(ROWS.values())[:12])
    for i, pid in enumerate(list(ids.values())[:4]):
        c.app.revise_prompt(owner, org, pid, base_version=1, template=f"Variant {i}: answer in haiku.", request_id="r")
        c.app.move_label(owner, org, pid, "production", 2, "r")
    c.supervisor.catch_up()
    index = c.vector_projection.index
    before = {str(p): index.retrieve_vector(str(org), str(p)) for p in ids.values()}
    query = c.search.search(org, "write poems", mode="hybrid", limit=5)
    c.supervisor.rebuild("vectors")
    after = {str(p): index.retrieve_vector(str(org), str(p)) for p in ids.values()}
    assert index.count(str(org)) == 12
    for pid, vector in before.items():
        assert after[pid] == pytest.approx(vector, abs=1e-5)
    again = c.search.search(org, "write poems", mode="hybrid", limit=5)
    assert [r.prompt_id for r in again.results] == [r.prompt_id for r in query.results]
    assert all(s.lag_events == 0 for s in c.supervisor.status())


def test_hybrid_uses_both_rankings(search_container):
    c = search_container
    owner, org = _org(c.app, "hy@ex.com")
    _load(c.app, owner, org, list(ROWS.values())[:20])
    c.supervisor.catch_up()
    result = c.search.search(org, "translate my text into better english", mode="hybrid", limit=5)
    assert result.results and not result.degraded
    assert any(len(r.ranks) == 2 for r in result.results)  # found by both rankings


def test_qdrant_down_commands_succeed_then_catch_up(make_settings):
    c = build(make_settings(vectors_enabled=True, qdrant_url="http://127.0.0.1:1"))
    try:
        owner, org = _org(c.app, "down@ex.com")
        _load(c.app, owner, org, list(ROWS.values())[:5])  # commands do not touch the index
        c.supervisor.catch_up()
        vectors = {s.name: s for s in c.supervisor.status()}["vectors"]
        assert vectors.position == 0 and vectors.lag_events > 0  # position not advanced
        with pytest.raises(SemanticSearchUnavailable):
            c.search.search(org, "linux", mode="semantic")
        degraded = c.search.search(org, "linux terminal", mode="hybrid")
        assert degraded.degraded and degraded.results
        # Qdrant comes back (an in-memory server stands in for it): the projection catches up.
        from qdrant_client import QdrantClient

        from projections.vectors.qdrant_server import QdrantServerIndex

        c.vector_projection.index = c.search.index = QdrantServerIndex(QdrantClient(":memory:"))
        c.vector_projection.index.ensure_ready()
        c.vector_projection._retry_at = 0
        c.supervisor.catch_up()
        assert {s.name: s for s in c.supervisor.status()}["vectors"].lag_events == 0
        assert c.vector_projection.index.count(str(org)) == 5
        assert c.search.search(org, "linux", mode="semantic").results
    finally:
        c.close()
