"""Request bodies are JSON: an integer field takes a JSON integer, a boolean field a JSON boolean.

FastAPI validates a parsed JSON body in pydantic's *python* mode, where a lax `int` would turn
`"1"`, `2.0` and `false` into 1, 2 and 0, and a lax `bool` would take `"true"` and `1`. Every such
field is declared strict; query parameters arrive as strings and stay lax.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import interfaces.http.schemas as schemas_pkg
from interfaces.http.schemas.common import RequestModel
from tests.e2e.support import assert_error

NOT_INTS = ["1", 2.0, 1.0, False, True, None]  # None only where the field is required
NOT_BOOLS = ["true", "false", 1, 0, None]


def url(org: str, *parts: Any) -> str:
    return "/".join([f"/v1/orgs/{org}/prompts", *(str(p) for p in parts)])


def _refused(response, field: str) -> None:
    body = assert_error(response, 422, "VALIDATION_ERROR")
    locs = [e["loc"] for e in body["error"]["details"]["errors"]]
    assert ["body", field] in locs, locs


@pytest.fixture
def setup(api):
    owner = api.user("owner")
    org = api.org(owner)
    pid = api.prompt(owner, org, "strict", "Hello {{name}}")
    return org, owner, pid


def test_label_version_and_expected_version_take_only_json_integers(api, setup):
    org, owner, pid = setup
    for bad in NOT_INTS[:-1]:  # null: "no version" (a split instead), refused as the body's shape below
        _refused(api.put(url(org, pid, "labels", "staging"), json={"version": bad}, headers=owner.h), "version")
    assert_error(api.put(url(org, pid, "labels", "staging"), json={"version": None}, headers=owner.h), 422,
                 "VALIDATION_ERROR")
    for bad in NOT_INTS[:-1]:  # expected_version may be null
        _refused(api.put(url(org, pid, "labels", "staging"), json={"version": 1, "expected_version": bad},
                         headers=owner.h), "expected_version")
    assert api.label(owner, org, pid, "staging", 1, expected_version=0).status_code == 200
    assert api.label(owner, org, pid, "staging", 1, expected_version=1).json()["version"] == 1


def test_base_version_takes_only_json_integers(api, setup):
    org, owner, pid = setup
    for bad in NOT_INTS[:-1]:  # null means "not given" (then If-Match or BASE_VERSION_REQUIRED)
        _refused(api.post(url(org, pid, "versions"), json={"base_version": bad, "template": "Hi {{name}}"},
                          headers=owner.h), "base_version")
    assert api.revise(owner, org, pid, 1, "Hi {{name}}") == 2


def test_render_version_takes_only_json_integers(api, setup):
    org, owner, pid = setup
    for bad in NOT_INTS[:-1]:
        _refused(api.post(url(org, pid, "render"), json={"variables": {"name": "Ada"}, "version": bad},
                          headers=owner.h), "version")
    r = api.post(url(org, pid, "render"), json={"variables": {"name": "Ada"}, "version": 1}, headers=owner.h)
    assert r.status_code == 200 and r.json()["text"] == "Hello Ada"
    # render variables are free-form JSON scalars: their types are kept, never coerced
    api.revise(owner, org, pid, 1, "{{a}}|{{b}}|{{c}}|{{d}}")
    r = api.post(url(org, pid, "render"), json={"variables": {"a": "1", "b": 2.5, "c": False, "d": 3}},
                 headers=owner.h)
    assert r.status_code == 200, r.text


def test_search_limit_and_include_archived_are_strict(api, setup):
    org, owner, _ = setup
    for bad in NOT_INTS:
        _refused(api.search(org, owner, {"query": "hello", "mode": "keyword", "limit": bad}), "limit")
    for bad in NOT_BOOLS:
        _refused(api.search(org, owner, {"query": "hello", "mode": "keyword", "include_archived": bad}),
                 "include_archived")
    r = api.search(org, owner, {"query": "hello", "mode": "keyword", "limit": 5, "include_archived": True})
    assert r.status_code == 200, r.text


def test_query_parameters_stay_lax(api, setup):
    """Query strings are text: `limit=2` is the integer 2 there."""
    org, owner, pid = setup
    r = api.q(url(org, pid, "versions"), owner, params={"limit": "2", "after": "0"})
    assert r.status_code == 200 and [v["version"] for v in r.json()["items"]] == [1]
    assert api.q(f"/v1/orgs/{org}/api-keys", owner, params={"include_revoked": "false"}).status_code == 200


def _request_models() -> list[type[RequestModel]]:
    for info in pkgutil.iter_modules(schemas_pkg.__path__):
        importlib.import_module(f"{schemas_pkg.__name__}.{info.name}")
    found, todo = [], list(RequestModel.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _scalars(schema: Any, path: str, out: list[tuple[str, dict]]) -> None:
    """int/bool core schemas below a model field. Members of a union are skipped: a smart union
    matches a JSON value to its own type first (free-form render variables keep "1" a string)."""
    if isinstance(schema, dict):
        if schema.get("type") in ("int", "bool"):
            out.append((path, schema))
        if schema.get("type") == "union":
            return
        for key, value in schema.items():
            _scalars(value, path, out)
    elif isinstance(schema, list):
        for value in schema:
            _scalars(value, path, out)


def test_every_integer_and_boolean_field_of_every_request_body_is_strict():
    checked: list[str] = []
    for model in _request_models():
        fields = model.__pydantic_core_schema__
        while fields.get("type") != "model-fields":
            fields = fields["schema"]
        for name, field in fields["fields"].items():
            found: list[tuple[str, dict]] = []
            _scalars(field["schema"], f"{model.__name__}.{name}", found)
            for path, schema in found:
                assert schema.get("strict") is True, f"{path} accepts lax input: use StrictInt / StrictBool"
                checked.append(path)
    assert {"LabelMove.version", "LabelMove.expected_version", "PromptRevise.base_version", "RenderRequest.version",
            "SearchIn.limit", "SearchIn.include_archived"} <= set(checked), checked
