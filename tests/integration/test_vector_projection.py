"""The vector projection is a deterministic fold of the event stream (real MiniLM embeddings, the
embedded engine): it never reads another read model, one writer at a time stamps each point with
the position it reflects, and search honours `min_position`. On both backends."""
from __future__ import annotations

import threading

from application import Principal
from interfaces.bootstrap import build
from projections.vectors.projection import VectorProjection
from tests.support.corpus import load_corpus

ROWS = load_corpus()[:12]


def _org(app, email="vec@example.com"):
    user_id, _ = app.register_user(email, "correct horse battery", "V", "r")
    owner = Principal.user(user_id)
    org = app.create_organisation(owner, "Vec", "r").id
    app.update_organisation(owner, org, "r", protected_labels=[])
    return owner, org


def _load(app, owner, org, rows):
    return [app.create_prompt(owner, org, name=f"p{i}", template=r["prompt"], tags=[r["type"].lower()],
                              request_id="r").id for i, r in enumerate(rows)]


def _payloads(projection, org, ids):
    out = {}
    for pid in ids:
        hits = projection.index.search(str(org), projection.index.retrieve_vector(str(org), str(pid)), 1,
                                       include_archived=True)
        out[str(pid)] = dict(hits[0].payload) if hits and hits[0].prompt_id == str(pid) else None
    return out


def test_concurrent_vector_writers_never_leave_a_stale_point(make_settings):
    """Runners used to upsert before claiming: a slow runner's stale payload landed last, and an
    archived prompt came back from a search excluding archived prompts."""
    c = build(make_settings(vectors_enabled=True))
    try:
        app, source = c.app, c.supervisor.source
        owner, org = _org(app)
        ids = _load(app, owner, org, ROWS)
        second = VectorProjection(c.engine, c.vector_projection.index, c.vector_projection.embedder)
        stop = threading.Event()
        errors: list[BaseException] = []

        def run(projection):
            while not stop.is_set():
                try:
                    projection.catch_up(source, batch_size=3)
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=run, args=(p,)) for p in (c.vector_projection, second)]
        for t in threads:
            t.start()
        try:
            for round_ in range(3):
                for pid in ids[:6]:
                    app.archive_prompt(owner, org, pid, f"a{round_}")
                    app.restore_prompt(owner, org, pid, f"r{round_}")
                for pid in ids[:4]:
                    app.archive_prompt(owner, org, pid, "final") if round_ == 2 else None
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert errors == []
        c.supervisor.catch_up(["vectors"])
        payloads = _payloads(c.vector_projection, org, ids)
        archived = {str(p) for p in ids[:4]}
        for pid, payload in payloads.items():
            prompt_events = [e for e in source.read(0, 100_000) if e.target_id == pid]
            assert payload["archived"] is (pid in archived), pid
            assert payload["position"] == prompt_events[-1].position, "each point reflects its latest event"
        hits = c.search.search(org, ROWS[0]["prompt"][:200], mode="semantic", limit=12)
        assert not {r.prompt_id for r in hits.results} & archived
    finally:
        c.close()


def test_vectors_survive_a_catalogue_rebuild_during_a_batch(make_settings):
    """The projection embedded the catalogue's rows: rebuilding the catalogue during a vector batch
    made rows look missing, they were skipped, the position moved past them and /similar answered
    503 forever. Now it folds the events themselves."""
    c = build(make_settings(vectors_enabled=True))
    try:
        owner, org = _org(c.app)
        ids = _load(c.app, owner, org, ROWS)
        c.supervisor.catch_up(list(c.supervisor.sql))
        rebuilding = threading.Thread(target=lambda: [c.supervisor.rebuild("catalogue") for _ in range(3)])
        rebuilding.start()
        c.vector_projection.catch_up(c.supervisor.source, batch_size=2)
        rebuilding.join()
        assert c.vector_projection.index.count(str(org)) == len(ids)
        c.supervisor.catch_up()
        similar = c.search.similar(str(org), str(ids[0]), limit=5)
        assert similar is not None and len(similar) == 5
    finally:
        c.close()


def test_a_point_lost_from_the_index_is_embedded_again(make_settings):
    c = build(make_settings(vectors_enabled=True))
    try:
        owner, org = _org(c.app)
        ids = _load(c.app, owner, org, ROWS[:3])
        c.supervisor.catch_up()
        c.vector_projection.index.delete([str(ids[0])])
        c.app.move_label(owner, org, ids[0], "staging", 1, "r")  # a payload-only change of the lost point
        c.supervisor.catch_up()
        payload = _payloads(c.vector_projection, org, ids[:1])[str(ids[0])]
        assert payload is not None and payload["labels"] == ["staging"]
    finally:
        c.close()


def test_replay_from_zero_converges_to_the_same_points(make_settings):
    c = build(make_settings(vectors_enabled=True))
    try:
        owner, org = _org(c.app)
        ids = _load(c.app, owner, org, ROWS[:6])
        c.app.revise_prompt(owner, org, ids[1], base_version=1, request_id="r", template="A pastry chef {{x}}")
        c.app.move_label(owner, org, ids[2], "production", 1, "r")
        c.app.archive_prompt(owner, org, ids[3], "r")
        c.supervisor.catch_up()
        live = _payloads(c.vector_projection, org, ids)
        c.supervisor.rebuild("vectors")
        assert _payloads(c.vector_projection, org, ids) == live
    finally:
        c.close()


def test_search_waits_for_the_vector_index_and_says_when_it_lags(make_settings):
    """Semantic and hybrid search ignored `min_position`: a new prompt was missing from results for up
    to ~1.1 s with `degraded: false`."""
    c = build(make_settings(vectors_enabled=True, inprocess_projections=True, query_wait_seconds=2))
    c.vector_projection.embedder.embed_query("load the model before the clock matters")
    c.start()
    try:
        owner, org = _org(c.app)
        result = c.app.create_prompt(owner, org, name="linux", template=ROWS[0]["prompt"], request_id="r")
        found = c.search.search(org, "act as a linux terminal", mode="semantic", limit=3,
                                min_position=result.position)
        assert [r.prompt_id for r in found.results][:1] == [str(result.id)] and not found.degraded
        for runner in c.runners:  # the index stops following the log
            runner.stop()
        later = c.app.create_prompt(owner, org, name="chef", template="You are a pastry chef {{x}}", request_id="r")
        c.supervisor.catch_up(list(c.supervisor.sql))  # the catalogue follows, the vectors do not
        lagging = c.search.search(org, "pastry chef", mode="hybrid", limit=3, min_position=later.position)
        assert lagging.degraded and "vector index" in lagging.notice
        assert str(later.id) in {r.prompt_id for r in lagging.results}  # keyword results still find it
        behind = c.search.search(org, "pastry chef", mode="semantic", limit=3)
        assert behind.degraded and "catching up" in behind.notice
    finally:
        c.close()


def test_switching_to_an_encoder_of_another_space_re_embeds_every_prompt(make_settings):
    """torch and onnx-int8 vectors differ slightly (adr/0018): after a switch the projection replays
    and every point carries the new encoder's vector, so queries and documents share one space."""
    c = build(make_settings(vectors_enabled=True, embedding_backend="torch"))
    try:
        owner, org = _org(c.app)
        ids = _load(c.app, owner, org, ROWS[:3])
        c.supervisor.catch_up()
        assert c.vector_projection.embedder.active_backend == "torch"
        before = {pid: c.vector_projection.index.retrieve_vector(str(org), str(pid)) for pid in ids}
    finally:
        c.close()

    c = build(make_settings(vectors_enabled=True, embedding_backend="onnx-int8"))
    try:
        assert c.supervisor.positions()["vectors"] == 0, "a switch of embedding space replays the vectors"
        c.supervisor.catch_up()
        embedder = c.vector_projection.embedder
        assert embedder.active_backend == "onnx-int8"
        for pid in ids:
            got = c.vector_projection.index.retrieve_vector(str(org), str(pid))
            assert got != before[pid], "re-embedded by the new encoder"
            assert sum(a * b for a, b in zip(got, before[pid])) > 0.95  # the same model, another encoder
    finally:
        c.close()

    c = build(make_settings(vectors_enabled=True, embedding_backend="onnx-int8"))
    try:
        assert c.supervisor.positions()["vectors"] > 0, "the same space again: nothing to replay"
    finally:
        c.close()
