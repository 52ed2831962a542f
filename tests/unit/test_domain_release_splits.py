"""Governance in the domain (issue 10): releases (domain/release.py), traffic splits (domain/splits.py)
and the prompt's label moves with a split or a review (domain/prompt.py), given / when / then.

The split hash is re-implemented here from its documentation (domain/splits.py docstring), without
calling the product's code, and the two are compared."""
from __future__ import annotations

import hashlib
import random
import struct
from collections import Counter
from uuid import UUID

import pytest

from domain import splits
from domain.errors import Conflict, Invalid, NotFound
from domain.prompt import Prompt
from domain.release import Release
from domain.splits import MAX_ENTRIES, bucket, clean_split, pick, primary
from tests.unit.domain_helpers import ACTOR, REQUEST, by, given, history, refused, replay, then

ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
PROMPT_ID = UUID("00000000-0000-4000-8000-0000000000b1")
OTHER_PROMPT = UUID("00000000-0000-4000-8000-0000000000b2")
RELEASE_ID = UUID("00000000-0000-4000-8000-0000000000d1")
ROLLBACK_ID = "00000000-0000-4000-8000-0000000000d2"


# ================================================================================================
# Releases
# ================================================================================================

MOVES = [
    {"prompt_id": str(PROMPT_ID), "name": "greet", "from": {"version": 1, "split": None},
     "to": {"version": 2, "split": None}},
    {"prompt_id": str(OTHER_PROMPT), "name": "tone", "from": None,
     "to": {"version": None, "split": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}},
]


def recorded(**kw) -> list:
    with by(ACTOR, "req-release"):
        return history(Release.record(RELEASE_ID, ORG_ID, kw.pop("label", "production"), kw.pop("moves", MOVES),
                                      kw.pop("reason", "spring release"), **kw))


def test_record_emits_created_with_every_move():
    with by(ACTOR, REQUEST):
        release = Release.record(RELEASE_ID, ORG_ID, "production", MOVES, "  spring release ", review_id="rv-1")

    assert then(release) == [("Created", {
        "org_id": ORG_ID, "label": "production", "moves": MOVES, "reason": "spring release", "review_id": "rv-1",
        "rollback_of": "", "actor": ACTOR, "request_id": REQUEST})]
    assert (release.label, release.moves, release.review_id, release.rollback_of, release.rolled_back_by) == (
        "production", MOVES, "rv-1", "", "")


def test_a_rollback_release_names_the_release_it_undoes():
    release = given(recorded(rollback_of=ROLLBACK_ID))

    assert release.rollback_of == ROLLBACK_ID


@pytest.mark.parametrize("reason", ["x" * 2001, "bell\x07"], ids=["too-long", "control-char"])
def test_a_bad_reason_is_refused(reason):
    refused(None, lambda: Release.record(RELEASE_ID, ORG_ID, "production", MOVES, reason), kind=Invalid,
            code="INVALID_MESSAGE")


def test_the_moves_are_copied():
    moves = [dict(m) for m in MOVES]
    with by():
        release = Release.record(RELEASE_ID, ORG_ID, "production", moves, "")
    moves[0]["name"] = "changed"

    assert release.moves[0]["name"] == "greet"


def test_rollback_moves_go_back_to_what_each_label_was_expecting_what_the_release_set():
    release = given(recorded())

    assert release.rollback_moves() == [
        {"prompt_id": str(PROMPT_ID), "name": "greet", "target": {"version": 1, "split": None},
         "expected": {"version": 2, "split": None}},
        {"prompt_id": str(OTHER_PROMPT), "name": "tone", "target": None,
         "expected": {"version": None, "split": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}},
    ]
    assert then(release) == [], "a query, not a command"


def test_rolled_back_emits_rolled_back_with_the_rollback_release():
    release = given(recorded())

    with by(ACTOR, "req-rollback"):
        release.rolled_back(ROLLBACK_ID)

    assert then(release) == [("RolledBack", {"org_id": ORG_ID, "rollback_release_id": ROLLBACK_ID, "actor": ACTOR,
                                             "request_id": "req-rollback"})]
    assert release.rolled_back_by == ROLLBACK_ID


def test_a_release_rolled_back_cannot_be_rolled_back_again():
    events = recorded()
    release = given(events)
    with by():
        release.rolled_back(ROLLBACK_ID)
    release = given(events + history(release))

    refused(release, release.rollback_moves, kind=Conflict, code="RELEASE_ROLLED_BACK",
            details={"rollback": ROLLBACK_ID})


def test_a_release_replays():
    events = recorded(review_id="rv")
    release = given(events)
    with by():
        release.rolled_back(ROLLBACK_ID)
    events += history(release)

    assert vars(replay(events)) == vars(given(events))


# ================================================================================================
# Splits
# ================================================================================================

S90_10 = [{"version": 7, "weight": 90}, {"version": 8, "weight": 10}]


def test_clean_split_keeps_a_valid_split():
    assert clean_split([{"version": 7, "weight": 90}, {"version": 8, "weight": 10}]) == S90_10


def test_clean_split_keeps_the_order_given():
    assert clean_split([{"version": 8, "weight": 10}, {"version": 7, "weight": 90}]) == [
        {"version": 8, "weight": 10}, {"version": 7, "weight": 90}]


def test_clean_split_accepts_the_maximum_entries():
    entries = [{"version": i + 1, "weight": 10} for i in range(MAX_ENTRIES)]

    assert clean_split(entries) == entries


def test_clean_split_accepts_a_weight_of_one():
    assert clean_split([{"version": 1, "weight": 99}, {"version": 2, "weight": 1}])[1]["weight"] == 1


@pytest.mark.parametrize("split", [
    None, {}, "7:90,8:10", [], [{"version": 1, "weight": 100}],
    [{"version": i + 1, "weight": 1 if i else 100 - MAX_ENTRIES} for i in range(MAX_ENTRIES + 1)],
], ids=["none", "dict", "string", "empty", "one-entry", "too-many"])
def test_a_split_has_two_to_ten_entries(split):
    refused(None, lambda: clean_split(split), kind=Invalid, code="INVALID_SPLIT")


@pytest.mark.parametrize("entry", [
    7, [7, 90], {"version": 7}, {"weight": 90}, {"version": 7, "weight": 90, "label": "x"},
], ids=["int", "list", "no-weight", "no-version", "extra-field"])
def test_each_entry_is_exactly_version_and_weight(entry):
    refused(None, lambda: clean_split([{"version": 1, "weight": 10}, entry]), kind=Invalid, code="INVALID_SPLIT",
            details={"index": 1})


@pytest.mark.parametrize("version,weight", [
    (0, 10), (-1, 10), (True, 10), (1.0, 10), ("2", 10), (None, 10),
    (2, 0), (2, 101), (2, True), (2, 10.0), (2, "10"), (2, -10),
], ids=["v0", "v-neg", "v-bool", "v-float", "v-str", "v-none", "w0", "w101", "w-bool", "w-float", "w-str", "w-neg"])
def test_versions_and_weights_are_integers_in_range(version, weight):
    refused(None, lambda: clean_split([{"version": 1, "weight": 90}, {"version": version, "weight": weight}]),
            kind=Invalid, code="INVALID_SPLIT", details={"index": 1})


def test_a_version_appears_once():
    refused(None, lambda: clean_split([{"version": 1, "weight": 50}, {"version": 1, "weight": 50}]), kind=Invalid,
            code="INVALID_SPLIT", details={"index": 1})


@pytest.mark.parametrize("weights,total", [((90, 5), 95), ((90, 11), 101), ((50, 50, 1), 101), ((1, 1), 2)])
def test_weights_sum_to_one_hundred(weights, total):
    split = [{"version": i + 1, "weight": w} for i, w in enumerate(weights)]

    refused(None, lambda: clean_split(split), kind=Invalid, code="INVALID_SPLIT", details={"sum": total})


@pytest.mark.parametrize("split,expected", [
    (S90_10, 7), ([{"version": 8, "weight": 10}, {"version": 7, "weight": 90}], 7),
    ([{"version": 3, "weight": 50}, {"version": 2, "weight": 50}], 2),
    ([{"version": 9, "weight": 30}, {"version": 4, "weight": 30}, {"version": 5, "weight": 40}], 5),
    ([{"version": 9, "weight": 40}, {"version": 4, "weight": 20}, {"version": 6, "weight": 40}], 6),
])
def test_the_primary_version_is_the_heaviest_lowest_on_a_tie(split, expected):
    assert primary(split) == expected


# -- the documented hash, re-implemented ----------------------------------------------------------


def documented_bucket(org_id, prompt_id, label: str, key: str) -> int:
    """bucket = int.from_bytes(sha256(f"{org_id}:{prompt_id}:{label}:{key}".encode()).digest()[:8], "big") % 100,
    written independently (big-endian unsigned 64-bit via struct)."""
    message = ":".join([str(org_id), str(prompt_id), label, key]).encode("utf-8")
    (value,) = struct.unpack(">Q", hashlib.new("sha256", message).digest()[0:8])
    return value % 100


def documented_pick(split, org_id, prompt_id, label: str, key: str) -> int:
    """Walk the entries in the order given, summing weights: the first whose running sum > bucket."""
    b = documented_bucket(org_id, prompt_id, label, key)
    cumulative = 0
    for entry in split:
        cumulative += entry["weight"]
        if cumulative > b:
            return entry["version"]
    raise AssertionError("weights sum to 100")


def test_a_known_bucket():
    """Pinned: a client computing the documented hash by hand gets this bucket."""
    digest = hashlib.sha256(f"{ORG_ID}:{PROMPT_ID}:canary:user-42".encode()).digest()
    assert bucket(ORG_ID, PROMPT_ID, "canary", "user-42") == int(digest[:8].hex(), 16) % 100


def test_the_bucket_is_the_documented_hash_for_many_keys():
    keys = [f"user-{i}" for i in range(2_000)] + ["", " ", "ü-unicode", "a:b:c", "x" * 200]

    assert [bucket(ORG_ID, PROMPT_ID, "canary", k) for k in keys] == [
        documented_bucket(ORG_ID, PROMPT_ID, "canary", k) for k in keys]


def test_the_bucket_accepts_ids_as_uuids_or_strings():
    assert bucket(ORG_ID, PROMPT_ID, "canary", "k") == bucket(str(ORG_ID), str(PROMPT_ID), "canary", "k")


SPLITS = {
    "90/10": S90_10,
    "10/90": [{"version": 8, "weight": 10}, {"version": 7, "weight": 90}],
    "50/50": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
    "three": [{"version": 3, "weight": 20}, {"version": 1, "weight": 30}, {"version": 2, "weight": 50}],
    "one-percent": [{"version": 1, "weight": 99}, {"version": 2, "weight": 1}],
}


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_pick_is_the_documented_pick(name):
    split = SPLITS[name]
    keys = [f"session-{i}" for i in range(10_000)]

    assert [pick(split, ORG_ID, PROMPT_ID, "canary", k) for k in keys] == [
        documented_pick(split, ORG_ID, PROMPT_ID, "canary", k) for k in keys]


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_pick_over_ten_thousand_keys_matches_the_weights_within_two_percent(name):
    split = SPLITS[name]
    counts = Counter(pick(split, ORG_ID, PROMPT_ID, "canary", f"user-{i}") for i in range(10_000))

    assert set(counts) <= {e["version"] for e in split}
    for entry in split:
        share = counts[entry["version"]] / 10_000 * 100
        assert abs(share - entry["weight"]) <= 2, (entry, share)


def test_the_same_key_always_gets_the_same_version():
    keys = [f"user-{i}" for i in range(500)]
    first = {k: pick(S90_10, ORG_ID, PROMPT_ID, "canary", k) for k in keys}

    for _ in range(3):
        shuffled = random.sample(keys, len(keys))
        assert {k: pick(S90_10, ORG_ID, PROMPT_ID, "canary", k) for k in shuffled} == first


def test_the_version_depends_on_the_prompt_and_the_label_too():
    keys = [f"user-{i}" for i in range(1_000)]
    split = SPLITS["50/50"]
    here = [pick(split, ORG_ID, PROMPT_ID, "canary", k) for k in keys]

    assert here != [pick(split, ORG_ID, OTHER_PROMPT, "canary", k) for k in keys]
    assert here != [pick(split, ORG_ID, PROMPT_ID, "beta", k) for k in keys]


def test_growing_the_share_of_a_version_only_moves_keys_towards_it():
    """Walking cumulative weights: with v8 at 10% then 20%, everyone who had v8 keeps it."""
    keys = [f"user-{i}" for i in range(3_000)]
    before = {k: pick(S90_10, ORG_ID, PROMPT_ID, "canary", k) for k in keys}
    after = {k: pick([{"version": 8, "weight": 20}, {"version": 7, "weight": 80}], ORG_ID, PROMPT_ID, "canary", k)
             for k in keys}
    reordered = {k: pick([{"version": 8, "weight": 10}, {"version": 7, "weight": 90}], ORG_ID, PROMPT_ID, "canary", k)
                 for k in keys}

    # order matters to the walk: the documented rule is about the order given
    assert all(reordered[k] == documented_pick([{"version": 8, "weight": 10}, {"version": 7, "weight": 90}],
                                               ORG_ID, PROMPT_ID, "canary", k) for k in keys)
    assert all(after[k] == 8 for k in keys if reordered[k] == 8)


def test_without_a_key_the_pick_is_random_but_follows_the_weights():
    counts = Counter(pick(S90_10, ORG_ID, PROMPT_ID, "canary", None) for _ in range(5_000))

    assert set(counts) == {7, 8}
    assert abs(counts[8] / 5_000 * 100 - 10) <= 3


def test_the_module_documents_the_hash():
    assert 'sha256(f"{org_id}:{prompt_id}:{label}:{key}".encode()).digest()[:8], "big") % 100' in splits.__doc__


# ================================================================================================
# Prompt labels: splits and review metadata
# ================================================================================================


def prompt_with(versions: int = 3, *moves) -> list:
    with by(ACTOR, "req-create"):
        prompt = Prompt.create(PROMPT_ID, ORG_ID, "greet", "v1 {{name}}", None, None, [], "")
        for n in range(2, versions + 1):
            prompt.revise(n - 1, template=f"v{n} {{{{name}}}}")
        for move in moves:
            move(prompt)
        return history(prompt)


def test_move_to_a_split_records_the_split_and_points_the_label_at_its_primary():
    prompt = given(prompt_with(3))

    with by(ACTOR, REQUEST):
        changed = prompt.move_label("Canary", None, 0,
                                    split=[{"version": 2, "weight": 10}, {"version": 3, "weight": 90}])

    assert changed is True
    assert then(prompt) == [("LabelMoved", {
        "org_id": ORG_ID, "label": "canary", "from_version": None, "to_version": 3,
        "split": [{"version": 2, "weight": 10}, {"version": 3, "weight": 90}], "review_id": "", "requested_by": "",
        "approved_by": [], "actor": ACTOR, "request_id": REQUEST})]
    assert prompt.labels["canary"] == 3
    assert prompt.splits == {"canary": [{"version": 2, "weight": 10}, {"version": 3, "weight": 90}]}
    assert prompt.label_target("canary") == {"version": 3, "split": [{"version": 2, "weight": 10},
                                                                      {"version": 3, "weight": 90}]}
    assert prompt.resolve(label="canary")["version"] == 3


def test_label_target_of_a_plain_and_an_unset_label():
    prompt = given(prompt_with(2, lambda p: p.move_label("staging", 2, 0)))

    assert prompt.label_target("staging") == {"version": 2, "split": None}
    assert prompt.label_target("nope") is None


@pytest.mark.parametrize("version,split", [(None, None), (2, S90_10)], ids=["neither", "both"])
def test_a_move_names_a_version_or_a_split(version, split):
    prompt = given(prompt_with(3))

    refused(prompt, lambda: prompt.move_label("canary", version, None, split=split), kind=Invalid,
            code="INVALID_SPLIT")


def test_a_split_of_a_missing_version_is_refused():
    prompt = given(prompt_with(2))

    refused(prompt, lambda: prompt.move_label("canary", None, 0, split=[{"version": 2, "weight": 50},
                                                                         {"version": 3, "weight": 50}]),
            kind=NotFound, code="VERSION_NOT_FOUND")


def test_a_bad_split_is_refused_by_the_prompt():
    prompt = given(prompt_with(2))

    refused(prompt, lambda: prompt.move_label("canary", None, 0, split=[{"version": 1, "weight": 50},
                                                                         {"version": 2, "weight": 40}]),
            kind=Invalid, code="INVALID_SPLIT", details={"sum": 90})


def test_compare_and_set_compares_the_primary_of_a_split():
    prompt = given(prompt_with(3, lambda p: p.move_label("canary", None, 0, split=[{"version": 1, "weight": 60},
                                                                                    {"version": 2, "weight": 40}])))

    refused(prompt, lambda: prompt.move_label("canary", 3, 2), kind=Conflict, code="LABEL_CONFLICT",
            details={"label": "canary", "expected_version": 2, "current_version": 1})
    with by():
        assert prompt.move_label("canary", 3, 1) is True
    ((_, event),) = then(prompt)
    assert (event["from_version"], event["to_version"], event["split"]) == (1, 3, None)
    assert prompt.splits == {}, "a plain version replaces the split"


def test_the_same_split_again_changes_nothing():
    split = [{"version": 1, "weight": 60}, {"version": 2, "weight": 40}]
    prompt = given(prompt_with(2, lambda p: p.move_label("canary", None, 0, split=split)))

    with by():
        assert prompt.move_label("canary", None, 1, split=[dict(e) for e in split]) is False
    assert then(prompt) == []


def test_new_weights_are_a_move_even_with_the_same_primary():
    prompt = given(prompt_with(2, lambda p: p.move_label("canary", None, 0, split=[{"version": 1, "weight": 60},
                                                                                    {"version": 2, "weight": 40}])))

    with by():
        assert prompt.move_label("canary", None, 1, split=[{"version": 1, "weight": 80},
                                                           {"version": 2, "weight": 20}]) is True
    ((_, event),) = then(prompt)
    assert (event["from_version"], event["to_version"]) == (1, 1)
    assert prompt.splits["canary"][0]["weight"] == 80


def test_a_plain_move_to_the_primary_of_a_split_replaces_the_split():
    prompt = given(prompt_with(2, lambda p: p.move_label("canary", None, 0, split=[{"version": 1, "weight": 60},
                                                                                    {"version": 2, "weight": 40}])))

    with by():
        assert prompt.move_label("canary", 1, 1) is True
    assert prompt.splits == {} and prompt.labels["canary"] == 1


REVIEW = {"review_id": "rv-1", "requested_by": "user:r", "approved_by": ["user:a", "user:b"]}


def test_a_reviewed_move_records_the_review():
    prompt = given(prompt_with(2))

    with by("user:b", "req-approve"):
        prompt.move_label("production", 2, 0, review=REVIEW)

    ((name, event),) = then(prompt)
    assert name == "LabelMoved"
    assert (event["review_id"], event["requested_by"], event["approved_by"], event["actor"]) == (
        "rv-1", "user:r", ["user:a", "user:b"], "user:b")


def test_a_reviewed_split_records_both():
    prompt = given(prompt_with(2))

    with by():
        prompt.move_label("production", None, 0, split=[{"version": 1, "weight": 95}, {"version": 2, "weight": 5}],
                          review=REVIEW)

    ((_, event),) = then(prompt)
    assert (event["split"], event["review_id"], event["to_version"]) == (
        [{"version": 1, "weight": 95}, {"version": 2, "weight": 5}], "rv-1", 1)


def test_a_reviewed_removal_records_the_review_and_drops_the_split():
    prompt = given(prompt_with(2, lambda p: p.move_label("canary", None, 0, split=[{"version": 1, "weight": 60},
                                                                                    {"version": 2, "weight": 40}])))

    with by(ACTOR, REQUEST):
        prompt.remove_label("canary", 1, review=REVIEW)

    assert then(prompt) == [("LabelRemoved", {"org_id": ORG_ID, "label": "canary", "from_version": 1,
                                              "review_id": "rv-1", "requested_by": "user:r",
                                              "approved_by": ["user:a", "user:b"], "actor": ACTOR,
                                              "request_id": REQUEST})]
    assert prompt.labels == {} and prompt.splits == {}


def test_a_direct_removal_records_no_review():
    prompt = given(prompt_with(1, lambda p: p.move_label("staging", 1, 0)))

    with by():
        prompt.remove_label("staging", 1)

    ((_, event),) = then(prompt)
    assert (event["review_id"], event["requested_by"], event["approved_by"]) == ("", "", [])


def test_remove_label_compare_and_set():
    prompt = given(prompt_with(2, lambda p: p.move_label("staging", 2, 0)))

    refused(prompt, lambda: prompt.remove_label("staging", 1), kind=Conflict, code="LABEL_CONFLICT",
            details={"label": "staging", "expected_version": 1, "current_version": 2})
    refused(prompt, lambda: prompt.remove_label("other", None), kind=NotFound, code="LABEL_NOT_FOUND")


def test_label_events_from_before_governance_are_direct_moves_of_one_version():
    moved = {"org_id": ORG_ID, "label": "production", "from_version": None, "to_version": 1, "actor": ACTOR,
             "request_id": "r"}
    removed = {"org_id": ORG_ID, "label": "production", "from_version": 1, "actor": ACTOR, "request_id": "r"}

    Prompt.LabelMoved.upcast_v1_v2(moved)
    Prompt.LabelRemoved.upcast_v1_v2(removed)

    assert (moved["split"], moved["review_id"], moved["requested_by"], moved["approved_by"]) == (None, "", "", [])
    assert (removed["review_id"], removed["requested_by"], removed["approved_by"]) == ("", "", [])
    assert "split" not in removed
    assert (Prompt.LabelMoved.class_version, Prompt.LabelRemoved.class_version) == (2, 2)


def test_label_upcasts_keep_what_is_there():
    state = {"split": S90_10, "review_id": "rv", "requested_by": "u", "approved_by": ["a"]}

    Prompt.LabelMoved.upcast_v1_v2(state)

    assert state == {"split": S90_10, "review_id": "rv", "requested_by": "u", "approved_by": ["a"]}


def test_a_prompt_with_splits_replays():
    events = prompt_with(3, lambda p: p.move_label("canary", None, 0, split=[{"version": 1, "weight": 70},
                                                                              {"version": 3, "weight": 30}]),
                         lambda p: p.move_label("production", 2, 0, review=REVIEW),
                         lambda p: p.move_label("canary", 3, 1))

    prompt = replay(events)
    assert prompt.labels == {"canary": 3, "production": 2}
    assert prompt.splits == {}
