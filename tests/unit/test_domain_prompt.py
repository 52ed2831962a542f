"""Prompt: versions, labels (compare-and-set), archive/restore, resolve, the name index, replay."""
from __future__ import annotations

import random
from uuid import UUID

import pytest

from domain.errors import Conflict, DomainError, Invalid, NotFound
from domain.ids import prompt_name_index_id
from domain.prompt import Prompt, PromptNameIndex
from tests.unit.domain_helpers import ACTOR, REQUEST, by, given, history, refused, replay, then

PROMPT_ID = UUID("00000000-0000-4000-8000-0000000000d1")
ORG_ID = UUID("00000000-0000-4000-8000-00000000000a")
OTHER_ORG = UUID("00000000-0000-4000-8000-00000000000b")
TEMPLATE = "Hello {{name}}, welcome to {{ place }}."


def create(actor: str = ACTOR, request: str = "req-create", **overrides) -> Prompt:
    """`Prompt.create` with defaults for every argument, run as `actor` for `request`."""
    args = dict(id=PROMPT_ID, org_id=ORG_ID, name="greeting", template=TEMPLATE, variables=None,
                model_config={"temperature": 0.2}, tags=["Onboarding"], message="first")
    args.update(overrides)
    with by(actor, request):
        return Prompt.create(**args)


def created(**overrides) -> list:
    return history(create(**overrides))


def with_versions(n: int) -> list:
    """Events of a prompt with versions 1..n (each revision changes the template)."""
    prompt = given(created())
    for v in range(2, n + 1):
        with by(ACTOR, f"req-rev-{v}"):
            prompt.revise(v - 1, template=f"v{v} {{{{name}}}}", message=f"v{v}")
    return created() + history(prompt)


def after(base: list, command, request: str = "r", actor: str = ACTOR) -> list:
    """`base` plus the events `command(prompt)` produces on it, run as `actor` for `request`."""
    prompt = given(base)
    with by(actor, request):
        command(prompt)
    return base + history(prompt)


# -- create --------------------------------------------------------------------------------------


def test_create_emits_created_with_defaults_from_placeholders():
    prompt = create(tags=["Onboarding", "b2b", "onboarding", " B2B "], request_hash="fp")

    assert then(prompt) == [("Created", {
        "org_id": ORG_ID, "name": "greeting", "template": TEMPLATE, "variables": ["name", "place"],
        "model_config": {"temperature": 0.2}, "tags": ["b2b", "onboarding"], "message": "first", "actor": ACTOR,
        "request_id": "req-create", "request_hash": "fp",
        "type": "text", "messages": None, "variable_schema": None, "template_format": "mustache",
    })]
    assert prompt.latest_version == 1
    assert prompt.versions[0] == {
        "version": 1, "type": "text", "template": TEMPLATE, "messages": None, "template_format": "mustache",
        "variables": ["name", "place"], "variable_schema": None, "model_config": {"temperature": 0.2},
        "tags": ["b2b", "onboarding"], "message": "first", "author": ACTOR,
    }
    assert (prompt.labels, prompt.archived, prompt.org_id) == ({}, False, ORG_ID)


def test_create_with_matching_declared_variables_keeps_declared_order():
    prompt = create(variables=["place", "name", "place"])

    assert then(prompt)[0][1]["variables"] == ["place", "name"]


def test_create_normalises_name():
    assert create(name="  Greeting  ").name == "Greeting"


def test_create_with_mismatched_variables_names_undeclared_and_unused():
    refused(None, lambda: create(variables=["name", "extra"]), kind=Invalid, code="VARIABLES_MISMATCH",
            details={"undeclared": ["place"], "unused": ["extra"]})


@pytest.mark.parametrize("template", ["", "   \n", None])
def test_create_with_empty_template_is_refused(template):
    refused(None, lambda: create(template=template), kind=Invalid, code="INVALID_TEMPLATE")


@pytest.mark.parametrize("tag", ["has space", "-leading", "", "ü", "x" * 65, "a/b"])
def test_create_with_invalid_tag_is_refused(tag):
    error = refused(None, lambda: create(tags=["ok", tag]), kind=Invalid, code="INVALID_TAGS")
    assert error.details == {"tag": tag}


def test_create_with_too_many_tags_is_refused():
    refused(None, lambda: create(tags=[f"t{i}" for i in range(33)]), kind=Invalid, code="INVALID_TAGS")


@pytest.mark.parametrize("config", [{"t": float("nan")}, {"t": {1, 2}}, {"t": object()}, {"t": "x" * 20_000}],
                         ids=["nan", "set", "object", "too-big"])
def test_create_with_non_json_model_config_is_refused(config):
    refused(None, lambda: create(model_config=config), kind=Invalid, code="INVALID_MODEL_CONFIG")


@pytest.mark.parametrize("name", [
    "greeting\tv2", "greeting\nv2", "greeting\rv2", "   ", "",
    "/greeting", "greeting/", "support//greeting", "support/ /greeting", "/",
    "support/../greeting", "../greeting", "./greeting", "support/.", "..",
    "support/gree\x1bting", "support\u2028/greeting", "x" * 201,
], ids=["tab", "newline", "carriage-return", "blank", "empty",
        "leading-slash", "trailing-slash", "doubled-slash", "blank-segment", "only-slash",
        "dot-dot-inside", "dot-dot-first", "dot-first", "dot-last", "only-dot-dot",
        "escape-in-folder", "line-separator", "too-long"])
def test_create_with_bad_name_is_refused(name):
    """Tab or line breaks inside a name are refused: the prompt could never be fetched by that name.
    `/` separates folders, so every segment must be a real name: no empty segment, no `.` or `..`."""
    refused(None, lambda: create(name=name), kind=Invalid, code="INVALID_NAME")


@pytest.mark.parametrize(("name", "clean"), [
    ("support/greeting", "support/greeting"),
    ("  support / billing /  refund reply ", "support/billing/refund reply"),
    ("a/b/c/d", "a/b/c/d"),
    ("x" * 200, "x" * 200),
], ids=["folder", "spaces-around-segments", "nested", "longest"])
def test_create_accepts_folder_paths_with_each_segment_trimmed(name, clean):
    """`/` was refused before folders existed; now it separates folder segments."""
    prompt = create(name=name)

    assert then(prompt)[0][1]["name"] == clean
    assert prompt.name == clean


def test_create_with_control_chars_in_message_is_refused():
    refused(None, lambda: create(message="bad\x1b[31m"), kind=Invalid, code="INVALID_MESSAGE")


# -- revise --------------------------------------------------------------------------------------


def test_revise_from_latest_emits_revised_with_next_version():
    prompt = given(created())

    with by("user:bob", REQUEST):
        prompt.revise(1, template="Bye {{name}}", message=" second ")

    assert then(prompt) == [("Revised", {
        "version": 2, "org_id": ORG_ID, "template": "Bye {{name}}", "variables": ["name"],
        "model_config": {"temperature": 0.2}, "tags": ["onboarding"], "message": "second", "actor": "user:bob",
        "request_id": REQUEST, "idempotency": "", "request_hash": "",
        "messages": None, "variable_schema": None, "template_format": "mustache",
    })]
    assert prompt.latest_version == 2
    assert prompt.versions[1]["author"] == "user:bob"
    assert prompt.versions[0]["template"] == TEMPLATE, "earlier versions are immutable"


def test_revise_with_everything_omitted_inherits_the_latest_version():
    prompt = given(with_versions(2))

    with by(ACTOR, REQUEST):
        prompt.revise(2)

    ((name, event),) = then(prompt)
    assert name == "Revised" and event["version"] == 3
    assert (event["template"], event["variables"], event["model_config"], event["tags"]) == (
        "v2 {{name}}", ["name"], {"temperature": 0.2}, ["onboarding"])


def test_revise_without_template_keeps_the_declared_variable_order():
    prompt = given(created(variables=["place", "name"]))

    with by(ACTOR, REQUEST):
        prompt.revise(1, message="same")

    assert then(prompt)[0][1]["variables"] == ["place", "name"]


def test_revise_with_a_new_template_defaults_variables_to_its_placeholders():
    prompt = given(created(variables=["place", "name"]))

    with by(ACTOR, REQUEST):
        prompt.revise(1, template="{{ b }} then {{a}}")

    assert then(prompt)[0][1]["variables"] == ["b", "a"]


def test_revise_replaces_only_the_fields_given():
    prompt = given(created())

    with by(ACTOR, REQUEST):
        prompt.revise(1, tags=["New", "new"], model_config={"temperature": 1})

    event = then(prompt)[0][1]
    assert (event["template"], event["variables"], event["tags"], event["model_config"]) == (
        TEMPLATE, ["name", "place"], ["new"], {"temperature": 1})


def test_revise_variables_against_the_inherited_template_must_match():
    prompt = given(created())

    refused(prompt, lambda: prompt.revise(1, variables=["name"]), kind=Invalid,
            code="VARIABLES_MISMATCH", details={"undeclared": ["place"], "unused": []})


def test_revise_from_a_stale_base_is_a_version_conflict():
    prompt = given(with_versions(3))

    refused(prompt, lambda: prompt.revise(2, template="x"), kind=Conflict,
            code="PROMPT_VERSION_CONFLICT", details={"base_version": 2, "current_version": 3})
    assert prompt.latest_version == 3


def test_revise_from_a_future_base_is_a_version_conflict():
    prompt = given(created())

    refused(prompt, lambda: prompt.revise(2, template="x"), kind=Conflict,
            code="PROMPT_VERSION_CONFLICT", details={"base_version": 2, "current_version": 1})


def test_revise_an_archived_prompt_is_refused():
    prompt = given(after(created(), lambda p: p.archive(), request="r-archive"))

    refused(prompt, lambda: prompt.revise(1, template="x"), kind=Conflict, code="PROMPT_ARCHIVED")


def test_revise_with_invalid_input_is_refused():
    prompt = given(created())

    refused(prompt, lambda: prompt.revise(1, template=" "), kind=Invalid, code="INVALID_TEMPLATE")
    refused(prompt, lambda: prompt.revise(1, tags=["NO SPACES"]), kind=Invalid, code="INVALID_TAGS")
    refused(prompt, lambda: prompt.revise(1, model_config={"x": float("inf")}), kind=Invalid,
            code="INVALID_MODEL_CONFIG")


# -- move_label ----------------------------------------------------------------------------------


def test_move_unset_label_emits_label_moved_from_none():
    prompt = given(with_versions(2))

    with by(ACTOR, REQUEST):
        assert prompt.move_label("Production", 1, None) is True

    assert then(prompt) == [("LabelMoved", {
        "org_id": ORG_ID, "label": "production", "from_version": None, "to_version": 1, "actor": ACTOR,
        "request_id": REQUEST,
        "review_id": "", "requested_by": "", "approved_by": [], "split": None,
    })]
    assert prompt.labels == {"production": 1}


def test_move_set_label_emits_from_and_to():
    base = after(with_versions(3), lambda p: p.move_label("staging", 1, None), request="r1")
    prompt = given(base)

    with by(ACTOR, REQUEST):
        assert prompt.move_label("staging", 3, 1) is True

    assert then(prompt) == [("LabelMoved", {
        "org_id": ORG_ID, "label": "staging", "from_version": 1, "to_version": 3, "actor": ACTOR, "request_id": REQUEST,
        "review_id": "", "requested_by": "", "approved_by": [], "split": None,
    })]


def test_expected_version_zero_means_unset():
    prompt = given(with_versions(2))

    with by(ACTOR, REQUEST):
        assert prompt.move_label("staging", 2, 0) is True
    assert then(prompt)[0][1]["to_version"] == 2


def test_expected_version_zero_on_a_set_label_is_a_conflict():
    prompt = given(after(with_versions(2), lambda p: p.move_label("staging", 1, None), request="r1"))

    refused(prompt, lambda: prompt.move_label("staging", 2, 0), kind=Conflict, code="LABEL_CONFLICT",
            details={"label": "staging", "expected_version": 0, "current_version": 1})
    assert prompt.labels == {"staging": 1}


def test_expected_version_mismatch_is_a_label_conflict_with_current_version():
    prompt = given(after(with_versions(3), lambda p: p.move_label("staging", 2, None), request="r1"))

    refused(prompt, lambda: prompt.move_label("staging", 3, 1), kind=Conflict, code="LABEL_CONFLICT",
            details={"label": "staging", "expected_version": 1, "current_version": 2})


def test_expected_version_on_an_unset_label_is_a_conflict():
    prompt = given(with_versions(2))

    refused(prompt, lambda: prompt.move_label("staging", 2, 1), kind=Conflict, code="LABEL_CONFLICT",
            details={"label": "staging", "expected_version": 1, "current_version": None})


def test_moving_a_label_to_where_it_points_emits_nothing():
    prompt = given(after(with_versions(2), lambda p: p.move_label("staging", 2, None), request="r1"))

    with by(ACTOR, REQUEST):
        assert prompt.move_label("staging", 2, None) is False
        assert prompt.move_label("STAGING", 2, 2) is False

    assert then(prompt) == []


@pytest.mark.parametrize("version", [0, 3, -1])
def test_move_label_to_unknown_version_is_refused(version):
    prompt = given(with_versions(2))

    refused(prompt, lambda: prompt.move_label("staging", version, None), kind=NotFound,
            code="VERSION_NOT_FOUND", details={"version": version, "latest_version": 2})


@pytest.mark.parametrize("label", ["latest", "LATEST", " latest "])
def test_latest_label_is_reserved(label):
    prompt = given(created())

    refused(prompt, lambda: prompt.move_label(label, 1, None), kind=Invalid, code="LABEL_RESERVED")


@pytest.mark.parametrize("label", ["", "has space", "-x", "a/b", "x" * 65, "prod!"])
def test_invalid_label_is_refused(label):
    prompt = given(created())

    refused(prompt, lambda: prompt.move_label(label, 1, None), kind=Invalid, code="INVALID_LABEL")


def test_move_label_on_an_archived_prompt_is_refused():
    prompt = given(after(created(), lambda p: p.archive(), request="r1"))

    refused(prompt, lambda: prompt.move_label("staging", 1, None), kind=Conflict,
            code="PROMPT_ARCHIVED")


# -- remove_label --------------------------------------------------------------------------------


def test_remove_label_emits_label_removed():
    prompt = given(after(with_versions(2), lambda p: p.move_label("staging", 2, None), request="r1"))

    with by(ACTOR, REQUEST):
        prompt.remove_label("Staging", 2)

    assert then(prompt) == [("LabelRemoved", {
        "org_id": ORG_ID, "label": "staging", "from_version": 2, "actor": ACTOR, "request_id": REQUEST,
        "review_id": "", "requested_by": "", "approved_by": [],
    })]
    assert prompt.labels == {}


def test_remove_unset_label_is_refused():
    prompt = given(created())

    refused(prompt, lambda: prompt.remove_label("staging", None), kind=NotFound,
            code="LABEL_NOT_FOUND", details={"label": "staging"})


def test_remove_label_with_stale_expected_version_is_refused():
    prompt = given(after(with_versions(2), lambda p: p.move_label("staging", 2, None), request="r1"))

    refused(prompt, lambda: prompt.remove_label("staging", 1), kind=Conflict, code="LABEL_CONFLICT",
            details={"label": "staging", "expected_version": 1, "current_version": 2})


def test_remove_latest_is_reserved():
    prompt = given(created())

    refused(prompt, lambda: prompt.remove_label("latest", None), kind=Invalid, code="LABEL_RESERVED")


def test_remove_label_on_an_archived_prompt_is_refused():
    base = after(created(), lambda p: p.move_label("staging", 1, None), request="r1")
    prompt = given(after(base, lambda p: p.archive(), request="r2"))

    refused(prompt, lambda: prompt.remove_label("staging", None), kind=Conflict,
            code="PROMPT_ARCHIVED")


# -- archive / restore ---------------------------------------------------------------------------


def test_archive_emits_archived():
    prompt = given(created())

    with by(ACTOR, REQUEST):
        prompt.archive()

    assert then(prompt) == [("Archived", {"org_id": ORG_ID, "actor": ACTOR, "request_id": REQUEST})]
    assert prompt.archived is True


def test_archiving_twice_is_refused():
    prompt = given(after(created(), lambda p: p.archive(), request="r1"))

    refused(prompt, lambda: prompt.archive(), kind=Conflict, code="PROMPT_ARCHIVED")


def test_restore_emits_restored_and_allows_changes_again():
    prompt = given(after(created(), lambda p: p.archive(), request="r1"))

    with by(ACTOR, REQUEST):
        prompt.restore()
    with by(ACTOR, "r3"):
        prompt.revise(1, template="again {{x}}")

    assert then(prompt) == [
        ("Restored", {"org_id": ORG_ID, "actor": ACTOR, "request_id": REQUEST}),
        ("Revised", {"version": 2, "org_id": ORG_ID, "template": "again {{x}}", "variables": ["x"],
                     "model_config": {"temperature": 0.2}, "tags": ["onboarding"], "message": "", "actor": ACTOR,
                     "request_id": "r3", "idempotency": "", "request_hash": "",
                     "messages": None, "variable_schema": None, "template_format": "mustache"}),
    ]
    assert prompt.archived is False


def test_restoring_a_non_archived_prompt_is_refused():
    prompt = given(created())

    refused(prompt, lambda: prompt.restore(), kind=Conflict, code="PROMPT_NOT_ARCHIVED")


def test_archive_keeps_versions_and_labels():
    base = after(with_versions(2), lambda p: p.move_label("production", 1, None), request="r1")
    prompt = given(after(base, lambda p: p.archive(), request="r2"))

    assert (prompt.latest_version, prompt.labels) == (2, {"production": 1})
    assert prompt.resolve(label="production")["version"] == 1


# -- resolve -------------------------------------------------------------------------------------


def test_resolve_by_label_version_and_latest():
    prompt = given(after(with_versions(3), lambda p: p.move_label("production", 2, None), request="r1"))

    assert prompt.resolve(label="production")["version"] == 2
    assert prompt.resolve(label="production")["template"] == "v2 {{name}}"
    assert prompt.resolve(version=1)["template"] == TEMPLATE
    assert prompt.resolve(version=1, label="production")["version"] == 1, "an explicit version wins"
    assert prompt.resolve()["version"] == 3
    assert prompt.resolve(label="latest")["version"] == 3


def test_resolve_unknown_label_or_version_is_not_found():
    prompt = given(with_versions(2))

    refused(prompt, lambda: prompt.resolve(label="production"), kind=NotFound, code="LABEL_NOT_FOUND",
            details={"label": "production"})
    refused(prompt, lambda: prompt.resolve(version=3), kind=NotFound, code="VERSION_NOT_FOUND",
            details={"version": 3, "latest_version": 2})


def test_resolve_follows_label_moves_and_removal():
    base = after(with_versions(3), lambda p: p.move_label("production", 1, None), request="r1")
    base = after(base, lambda p: p.move_label("production", 3, 1), request="r2")
    assert given(base).resolve(label="production")["version"] == 3

    prompt = given(after(base, lambda p: p.remove_label("production", 3), request="r3"))
    refused(prompt, lambda: prompt.resolve(label="production"), kind=NotFound, code="LABEL_NOT_FOUND")


# -- PromptNameIndex -----------------------------------------------------------------------------


def test_prompt_name_index_id_is_case_insensitive_within_an_org():
    assert prompt_name_index_id(ORG_ID, "Greeting") == prompt_name_index_id(ORG_ID, "GREETING") == \
        prompt_name_index_id(ORG_ID, "greeting")
    assert prompt_name_index_id(ORG_ID, "greeting") != prompt_name_index_id(ORG_ID, "farewell")


def test_prompt_name_index_id_differs_across_orgs():
    assert prompt_name_index_id(ORG_ID, "greeting") != prompt_name_index_id(OTHER_ORG, "greeting")


def test_prompt_name_index_aggregate_claims_the_name():
    index = PromptNameIndex(org_id=ORG_ID, name="Greeting", prompt_id=PROMPT_ID)

    assert index.id == PromptNameIndex.create_id(ORG_ID, "greeting") == prompt_name_index_id(ORG_ID, "gReEtInG")
    assert then(index) == [("Created", {"org_id": ORG_ID, "name": "Greeting", "prompt_id": PROMPT_ID})]
    assert PromptNameIndex(org_id=OTHER_ORG, name="Greeting", prompt_id=PROMPT_ID).id != index.id


# -- replay property -----------------------------------------------------------------------------

LABELS = ["production", "staging", "canary"]


def _random_command(rng: random.Random, prompt: Prompt, model: dict):
    """A random command and the change it must make to the reference model (None = refused / no-op)."""
    kind = rng.choice(["revise", "revise", "move", "move", "remove", "archive", "restore"])
    latest = model["versions"]
    if kind == "revise":
        base = latest if rng.random() < 0.85 else rng.randint(1, latest + 1)
        word = rng.choice(["a", "b", "c"])
        template = rng.choice([None, f"{word} {{{{{word}}}}}"])
        tags = rng.choice([None, [], [word.upper(), word]])
        ok = not model["archived"] and base == latest

        def apply(m):
            m["versions"] += 1
            m["tags"] = [word] if tags else ([] if tags == [] else m["tags"])
        return (lambda: prompt.revise(base, template=template, tags=tags, message=word)), (apply if ok else None)
    if kind == "move":
        label, version = rng.choice(LABELS), rng.randint(0, latest + 1)
        current = model["labels"].get(label)
        expected = rng.choice([None, None, current or 0, rng.randint(0, latest)])
        ok = (not model["archived"] and 1 <= version <= latest
              and (expected is None or (current or 0) == expected) and current != version)

        def apply(m):
            m["labels"][label] = version
        return (lambda: prompt.move_label(label, version, expected)), (apply if ok else None)
    if kind == "remove" and not model["archived"]:  # (removing on an archived prompt: see the xfail above)
        label = rng.choice(LABELS)
        current = model["labels"].get(label)
        expected = rng.choice([None, current, rng.randint(1, latest)])
        ok = current is not None and (expected is None or expected == current)

        def apply(m):
            del m["labels"][label]
        return (lambda: prompt.remove_label(label, expected)), (apply if ok else None)
    if kind == "archive":
        def apply(m):
            m["archived"] = True
        return (lambda: prompt.archive()), (None if model["archived"] else apply)

    def apply(m):
        m["archived"] = False
    return (lambda: prompt.restore()), (apply if model["archived"] else None)


@pytest.mark.parametrize("seed", range(50))
def test_replaying_the_collected_events_rebuilds_the_live_state(seed):
    rng = random.Random(seed)
    live = create(tags=[])
    events = history(live)
    model = {"versions": 1, "labels": {}, "archived": False, "tags": []}

    for _ in range(80):
        command, change = _random_command(rng, live, model)
        before = live.version
        try:
            with by(ACTOR, "r"):
                command()
        except DomainError:
            assert change is None, "the reference model expected this command to succeed"
            assert live.version == before, "a refused command emitted an event"
        else:
            if change is None:
                assert live.version == before, "a no-op command emitted an event"
            else:
                change(model)
        events += history(live)
        assert (live.latest_version, live.labels, live.archived) == (model["versions"], model["labels"],
                                                                   model["archived"])
        assert live.versions[-1]["tags"] == model["tags"]

    rebuilt = replay(events)

    assert isinstance(rebuilt, Prompt)
    assert rebuilt.version == live.version == len(events)
    assert rebuilt.versions == live.versions
    assert rebuilt.labels == live.labels
    assert rebuilt.archived == live.archived
    assert [v["version"] for v in rebuilt.versions] == list(range(1, rebuilt.latest_version + 1))
    assert all(1 <= v <= rebuilt.latest_version for v in rebuilt.labels.values())


def test_a_retried_idempotent_revision_is_recognised_not_stale():
    prompt = given(created())
    with by(ACTOR, REQUEST):
        prompt.revise(1, template="v2 {{name}}", idempotency="tok", request_hash="h1")
    assert then(prompt)[0][1]["idempotency"] == "tok"
    assert prompt.revision_for("tok", "h1") == 2
    assert prompt.revision_for("other", "h1") is None
    refused(prompt, lambda: prompt.revision_for("tok", "h2"), kind=Conflict, code="IDEMPOTENCY_KEY_REUSED")
